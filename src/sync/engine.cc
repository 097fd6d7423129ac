// Engine: peers, catalogues and planning. Streams are in engine_stream.cc.
#include "sync/engine.h"

#include "journal/identity.h"

namespace cairn::sync {

Engine::Engine(SyncOptions options)
    : options_(options), high_water_([](const std::string&) { return false; }) {}

std::vector<Action> Engine::TakeActions() {
  std::vector<Action> out;
  out.swap(actions_);
  return out;
}

void Engine::Send(const std::string& peer, wire::Envelope message) {
  Action a;
  a.kind = Action::Kind::kSend;
  a.peer = peer;
  a.message = std::move(message);
  actions_.push_back(std::move(a));
}

void Engine::Close(const std::string& peer, const std::string& reason) {
  Action a;
  a.kind = Action::Kind::kClose;
  a.peer = peer;
  a.reason = reason;
  actions_.push_back(std::move(a));
  OnPeerGone(peer);
}

wire::CatalogueEntry Engine::LocalEntry(const std::string& device) const {
  wire::CatalogueEntry e;
  e.set_device(device);
  if (auto it = local_.find(device); it != local_.end()) {
    e.set_first(it->second.first);
    e.set_last(it->second.last);
    e.set_snapshot(it->second.snapshot);
    e.set_source(it->second.source);
  }
  return e;
}

void Engine::SetLocal(const std::vector<journal::StreamInfo>& catalogue) {
  for (const auto& info : catalogue) local_[info.device] = info;
}

void Engine::OnLocalChange(const journal::StreamInfo& info) {
  local_[info.device] = info;
  dirty_.insert(info.device);
  for (auto& [peer, p] : peers_) {
    if (p.serving.count(info.device)) Pump(peer, info.device);
  }
  if (guarded_.count(info.device)) CheckGuard();
}

void Engine::Flush() {
  if (dirty_.empty()) return;
  wire::Envelope env;
  wire::Catalogue* c = env.mutable_catalogue();
  c->set_full(false);
  for (const auto& device : dirty_) *c->add_entries() = LocalEntry(device);
  dirty_.clear();
  for (const auto& [peer, p] : peers_) Send(peer, env);
}

void Engine::OnPeerActive(const std::string& peer) {
  peers_[peer] = Peer();
  wire::Envelope env;
  wire::Catalogue* c = env.mutable_catalogue();
  c->set_full(true);
  for (const auto& [device, info] : local_) *c->add_entries() = LocalEntry(device);
  Send(peer, std::move(env));
}

void Engine::OnSubscriberActive(const std::string& name) {
  OnPeerActive(name);
  peers_[name].subscriber = true;
}

void Engine::OnPeerGone(const std::string& peer) {
  if (!peers_.erase(peer)) return;
  for (auto it = following_.begin(); it != following_.end();) {
    Follow& f = it->second;
    if (f.peer != peer) {
      ++it;
    } else if (!f.applying) {
      it = following_.erase(it);
    } else {
      // Its subscription is gone with the connection, its apply is not: keep
      // only that, so that a new connection to the same peer subscribes again.
      f = Follow();
      f.applying = f.stale_apply = true;
      ++it;
    }
  }
  Replan();
}

void Engine::OnPeerRtt(const std::string& peer, int64_t rtt_us) {
  auto p = peers_.find(peer);
  if (p == peers_.end() || rtt_us <= 0) return;
  p->second.catalogue.rtt_us = rtt_us;
  Replan();
}

void Engine::OnMessage(const std::string& peer, wire::Envelope m) {
  if (!peers_.count(peer)) return;
  switch (m.msg_case()) {
    case wire::Envelope::kCatalogue:
      return OnCatalogue(peer, m.catalogue());
    case wire::Envelope::kSubscribe:
      return OnSubscribe(peer, m.subscribe());
    case wire::Envelope::kUnsubscribe:
      peers_[peer].serving.erase(m.unsubscribe().device());
      return;
    case wire::Envelope::kCredit: {
      auto& serving = peers_[peer].serving;
      auto it = serving.find(m.credit().device());
      if (it == serving.end()) return;
      it->second.credit += m.credit().bytes();
      return Pump(peer, m.credit().device());
    }
    case wire::Envelope::kStreamHeader: {
      const std::string device = m.stream_header().device();
      return OnStreamMessage(peer, device, std::move(m), 0);
    }
    case wire::Envelope::kSnapshot: {
      const std::string device = m.snapshot().header().device();
      const uint64_t bytes = m.ByteSizeLong();
      return OnStreamMessage(peer, device, std::move(m), bytes);
    }
    case wire::Envelope::kEvents: {
      const std::string device = m.events().device();
      const uint64_t bytes = m.ByteSizeLong();
      return OnStreamMessage(peer, device, std::move(m), bytes);
    }
    default:
      return Close(peer,
                   "unexpected message in sync: field " + std::to_string(m.msg_case()));
  }
}

void Engine::OnDrained(const std::string& peer) {
  auto p = peers_.find(peer);
  if (p == peers_.end()) return;
  std::vector<std::string> devices;
  for (const auto& [device, s] : p->second.serving) devices.push_back(device);
  for (const auto& device : devices) Pump(peer, device);
}

void Engine::OnCatalogue(const std::string& peer, const wire::Catalogue& c) {
  if (peers_[peer].subscriber) return;  // it has nothing to offer
  heard_.insert(peer);
  auto& entries = peers_[peer].catalogue.entries;
  if (c.full()) entries.clear();
  for (const auto& e : c.entries()) {
    if (!journal::ValidateDeviceId(e.device()).ok()) {
      return Close(peer, "catalogue names an invalid device id");
    }
    entries[e.device()] = e;
  }
  if (entries.size() > options_.max_catalogue_entries) {
    return Close(peer, "catalogue exceeds " +
                           std::to_string(options_.max_catalogue_entries) + " devices");
  }
  Replan();
  CheckGuard();
}

void Engine::Replan() {
  PlanInput in;
  for (const auto& [device, info] : local_) in.local[device] = LocalEntry(device);
  // A guarded device of ours is followed like any other until the guard lifts.
  for (const auto& device : guarded_) in.local[device].set_source(false);
  for (const auto& [peer, p] : peers_) {
    if (p.subscriber) continue;
    in.peers[peer] = p.catalogue;
    for (const auto& [device, peer_id] : forked_) {
      if (peer_id == peer) in.peers[peer].entries.erase(device);
    }
  }
  for (const auto& [device, f] : following_) in.current[device] = f.peer;
  in.switch_margin = options_.switch_margin;
  in.rtt_switch_min_us = options_.rtt_switch_min_us;
  for (const auto& [device, peer] : Plan(in)) {
    if (guarded_.count(device) &&
        in.peers[peer].entries[device].last() <= LocalEntry(device).last()) {
      continue;  // nothing to catch up from that peer
    }
    auto it = following_.find(device);
    if (it == following_.end() || it->second.peer != peer) FollowThrough(device, peer);
  }
}

// Subscribes to `device` through `peer`, leaving the previous peer if any. Records
// in flight from the old peer are dropped; the new subscription starts after what
// we hold, and anything delivered twice is recognised by the journal as such.
void Engine::FollowThrough(const std::string& device, const std::string& peer) {
  auto& f = following_[device];
  if (!f.peer.empty() && peers_.count(f.peer)) {
    wire::Envelope un;
    un.mutable_unsubscribe()->set_device(device);
    Send(f.peer, std::move(un));
  }
  const bool applying = f.applying;
  f = Follow();
  f.peer = peer;
  f.applying = f.stale_apply = applying;
  wire::Envelope sub;
  sub.mutable_subscribe()->set_device(device);
  sub.mutable_subscribe()->set_from(LocalEntry(device).last() + 1);
  sub.mutable_subscribe()->set_credit(options_.initial_credit_bytes);
  Send(peer, std::move(sub));
}

void Engine::Guard(const std::set<std::string>& devices, size_t expected_peers) {
  guarded_ = devices;
  guard_expected_peers_ = expected_peers;
  CheckGuard();
}

void Engine::ReleaseGuard(const std::string& reason) {
  const std::set<std::string> devices = guarded_;
  for (const auto& device : devices) Release(device, reason);
}

void Engine::CheckGuard() {
  if (guarded_.empty() || heard_.size() < guard_expected_peers_) return;
  const std::set<std::string> devices = guarded_;
  for (const auto& device : devices) {
    if (PeerLast(device) > LocalEntry(device).last()) continue;  // still catching up
    auto f = following_.find(device);
    if (f != following_.end() && (f->second.applying || !f->second.queue.empty()))
      continue;
    Release(device, "heads heard from " + std::to_string(heard_.size()) + " peer(s)");
  }
}

void Engine::Release(const std::string& device, const std::string& reason) {
  if (!guarded_.erase(device)) return;
  if (auto f = following_.find(device); f != following_.end()) {
    if (peers_.count(f->second.peer)) {
      wire::Envelope un;
      un.mutable_unsubscribe()->set_device(device);
      Send(f->second.peer, std::move(un));
    }
    following_.erase(f);
  }
  Action a;
  a.kind = Action::Kind::kRelease;
  a.device = device;
  a.reason = reason;
  actions_.push_back(std::move(a));
}

std::string Engine::Via(const std::string& device) const {
  auto it = following_.find(device);
  return it == following_.end() ? std::string() : it->second.peer;
}

uint64_t Engine::PeerLast(const std::string& device) const {
  uint64_t best = 0;
  for (const auto& [peer, p] : peers_) {
    auto it = p.catalogue.entries.find(device);
    if (it != p.catalogue.entries.end()) best = std::max(best, it->second.last());
  }
  return best;
}

}  // namespace cairn::sync
