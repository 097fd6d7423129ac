// Engine: peers, catalogues and planning. Streams are in engine_stream.cc.
#include "sync/engine.h"

#include <fnmatch.h>

#include <array>

#include "base/plant.h"
#include "journal/identity.h"

namespace cairn::sync {

Engine::Engine(SyncOptions options)
    : options_(options), high_water_([](const std::string&) { return false; }) {}

std::vector<Action> Engine::TakeActions() {
  while (!deferred_closes_.empty()) {
    auto [peer, reason] = std::move(deferred_closes_.front());
    deferred_closes_.erase(deferred_closes_.begin());
    if (peers_.count(peer)) Close(peer, reason);
  }
  for (auto& [device, stage_id] : ledger_.dropped) {
    Action a;
    a.kind = Action::Kind::kDropStage;
    a.device = std::move(device);
    a.stage_id = stage_id;
    actions_.push_back(std::move(a));
  }
  ledger_.dropped.clear();
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

// By value: callers pass a Follow's peer, which OnPeerGone may erase.
void Engine::Close(std::string peer, const std::string& reason) {
  Action a;
  a.kind = Action::Kind::kClose;
  a.peer = peer;
  a.reason = reason;
  actions_.push_back(std::move(a));
  OnPeerGone(peer);
}

uint64_t Engine::LocalLast(const std::string& device) const {
  auto it = local_.find(device);
  return it == local_.end() ? 0 : it->second.last;
}

uint64_t Engine::LocalSnapshot(const std::string& device) const {
  auto it = local_.find(device);
  return it == local_.end() ? 0 : it->second.snapshot;
}

wire::CatalogueEntry Engine::LocalEntry(const std::string& device) const {
  wire::CatalogueEntry e;
  e.set_device(device);
  if (auto it = local_.find(device); it != local_.end()) {
    e.set_first(it->second.first);
    e.set_last(it->second.last);
    e.set_snapshot(it->second.snapshot);
    e.set_source(it->second.source);
    for (const auto& g : it->second.groups) e.add_groups(g);
  }
  return e;
}

void Engine::Sum(Stored& s, std::optional<uint32_t> fine) {
  s.key = KeyOf(s.device, fine ? *fine : FineBucket(s.device), s.last, s.groups);
  // A stream that holds nothing yet adds nothing: a peer does not store it (there
  // is nothing to fetch), and the delta of its first event names it.
  if (s.last == 0 && s.snapshot == 0) s.key.digest = 0;
  s.mine = interest_.Matches(s.device, s.groups);
  all_sums_.Add(s.key);
  if (s.mine) mine_sums_.Add(s.key);
}

void Engine::Unsum(const Stored& s) {
  all_sums_.Remove(s.key);
  if (s.mine) mine_sums_.Remove(s.key);
}

void Engine::SetLocal(const std::vector<journal::StreamInfo>& catalogue) {
  for (const auto& info : catalogue) {
    std::optional<uint32_t> fine;
    if (auto it = local_.find(info.device); it != local_.end()) {
      Unsum(it->second);
      fine = it->second.key.fine;
    }
    Stored& stored = local_[info.device] = info;
    Sum(stored, fine);
  }
  ++stored_version_;
}

void Engine::OnLocalChange(const journal::StreamInfo& info) {
  ++activity_;
  // One SHA-256 per commit (the digest), not two: the bucket is the old one.
  auto old = local_.find(info.device);
  const bool added = old == local_.end();
  std::optional<uint32_t> fine;
  if (!added) {
    Unsum(old->second);
    fine = old->second.key.fine;
  }
  Stored& stored = local_[info.device] = info;
  Sum(stored, fine);
  if (added) ++stored_version_;
  // A scan toward a summary that is past the device sends its new entry with it;
  // past kScanChangedMax such entries, the catalogue goes whole instead.
  for (auto& [peer, p] : peers_) {
    if (p.scan && p.sending_after && info.device <= *p.sending_after &&
        Offers(p, info.device)) {
      p.scan->changed.insert(info.device);
      if (p.scan->changed.size() > kScanChangedMax) BeginCatalogue(p, Telling::kEntries);
    }
  }
  if (!WantedLocal(info.device)) {
    // It came on a peer's claim of a group its certificate does not name (or an
    // apply that was in flight when the interest narrowed): not kept.
    if (!interest_.Matches(info.device, info.groups)) unwanted_.insert(info.device);
    Unfollow(info.device);
    ForgetUnwanted();
    return;
  }
  if (auto a = accept_gap_.find(info.device);
      a != accept_gap_.end() && info.last > a->second) {
    accept_gap_.erase(a);  // the head moved (the accepted snapshot, or events came)
  }
  dirty_.insert(info.device);
  for (auto& [peer, p] : peers_) {
    if (p.serving.count(info.device)) Pump(peer, info.device);
  }
  if (guarded_.count(info.device)) CheckGuard();
}

void Engine::Flush() {
  if (dirty_.empty()) return;
  // The deltas for `p` (null: a peer told of every device), in parts of about
  // kCatalogueBytes. Only what it may read and follows; the news that we dropped
  // a device (`gone`) goes to every peer that may read it.
  auto parts_for = [&](const Peer* p) {
    std::vector<wire::Envelope> parts;
    size_t bytes = kCatalogueBytes;
    for (const auto& device : dirty_) {
      const bool stored = local_.count(device) > 0;
      if (p != nullptr && (stored ? !Offers(*p, device) : !MayRead(*p, device))) continue;
      if (bytes >= kCatalogueBytes) {
        parts.emplace_back();
        bytes = 0;
      }
      wire::CatalogueEntry* e = parts.back().mutable_catalogue()->add_entries();
      *e = LocalEntry(device);
      if (!stored) e->set_gone(true);
      bytes += e->ByteSizeLong() + 4;
    }
    return parts;
  };
  std::optional<std::vector<wire::Envelope>> every;  // built once, for all such peers
  for (const auto& [peer, p] : peers_) {
    if (p.read_scope.empty() && p.interest.all()) {
      if (!every) every = parts_for(nullptr);
      for (const auto& env : *every) Send(peer, env);
    } else {
      for (auto& env : parts_for(&p)) Send(peer, std::move(env));
    }
  }
  dirty_.clear();
}

void Engine::OnPeerActive(const std::string& peer) {
  ++activity_;
  Peer& p = peers_[peer] = Peer();
  BeginCatalogue(p, Telling::kScan);
  if (!interest_.all()) {  // none sent: every device (what older nodes assume)
    wire::Envelope env;
    for (const auto& pattern : interest_.patterns())
      env.mutable_interest()->add_follow(pattern);
    Send(peer, std::move(env));
  }
  PumpCatalogue(peer);
}

void Engine::RestartCatalogue(const std::string& peer, Peer& p) {
  p.restarted_at = interest_clock_;
  p.restart_pending = false;
  BeginCatalogue(p, Telling::kScan);
  PumpCatalogue(peer);
}

void Engine::BeginCatalogue(Peer& p, Telling telling) {
  if (p.subscriber && telling == Telling::kScan) telling = Telling::kEntries;
  p.telling = telling;
  p.sending_after = "";
  p.part_first = true;
  p.scan.reset();
  p.summary_id = 0;  // a want for an earlier summary is not answered
}

// Whether the summary's sums are kept already (every device we store, or what we
// follow) or must be made by a scan; a peer offered few devices gets them whole.
// A summary only where the peer may hold what we hold: when we follow every
// device, or what it follows. A node that follows less than its peer stores less
// than the peer compares with, and every bucket would differ.
bool Engine::PumpSummary(const std::string& peer, Peer& p) {
  if (!interest_.all() && !(p.interest == interest_)) {
    BeginCatalogue(p, Telling::kEntries);
    return true;
  }
  const BucketSums* kept = OffersAll(p)                                      ? &all_sums_
                           : p.read_scope.empty() && p.interest == interest_ ? &mine_sums_
                                                                             : nullptr;
  if (kept == nullptr) {
    if (!p.scan) p.scan.emplace();
    size_t scanned = 0;
    auto it = local_.upper_bound(*p.sending_after);
    if (p.sending_after->empty()) it = local_.begin();
    for (; it != local_.end() && scanned < kCatalogueScan; ++it, ++scanned) {
      p.sending_after = it->first;
      if (!Offers(p, it->first)) continue;
      ++p.scan->offered;
      if (p.scan->few.size() < kFewMax) p.scan->few.push_back(it->first);
      if (it->first != options_.self && it->first != peer)
        p.scan->sums.Add(it->second.key);
    }
    if (it != local_.end()) return false;  // on the next drain or second
  }
  const size_t offered = kept != nullptr ? kept->count() : p.scan->offered;
  if (offered >= options_.summary_min_entries) {
    SendSummary(peer, p, kept != nullptr ? *kept : p.scan->sums, kept != nullptr);
    return false;
  }
  if (kept != nullptr || offered > p.scan->few.size()) {  // sent whole, in parts
    BeginCatalogue(p, Telling::kEntries);
    return true;
  }
  // The scan found few: those (as they are now) and what changed behind it, whole.
  std::set<std::string> devices(p.scan->few.begin(), p.scan->few.end());
  devices.insert(p.scan->changed.begin(), p.scan->changed.end());
  wire::Envelope env;
  wire::Catalogue* c = env.mutable_catalogue();
  c->set_full(true);
  for (const auto& device : devices) {
    if (local_.count(device) && Offers(p, device)) *c->add_entries() = LocalEntry(device);
  }
  p.scan.reset();
  p.sending_after.reset();
  p.telling = Telling::kEntries;
  p.part_first = false;
  p.sent_first_part = true;
  catalogue_stats_.entries_sent += c->entries_size();
  catalogue_stats_.bytes_sent += env.ByteSizeLong();
  Send(peer, std::move(env));
  return false;
}

void Engine::SendSummary(const std::string& peer, Peer& p, const BucketSums& sums,
                         bool live) {
  wire::Envelope env;
  wire::Catalogue* c = env.mutable_catalogue();
  wire::CatalogueSummary* s = c->mutable_summary();
  const int bits = SummaryBits(sums.count());
  std::vector<uint64_t> folded = sums.Fold(bits);
  // Beside the sums, as entries: our own device and the peer's, whose heads move
  // the most and whose `source` the digests leave out (a scan leaves them out of
  // its sums; kept sums give them back here), and what changed behind a scan.
  std::set<std::string> named;
  if (p.scan) named = std::move(p.scan->changed);
  for (const std::string* device :
       std::array<const std::string*, 2>{&options_.self, &peer}) {
    auto it = local_.find(*device);
    if (device->empty() || it == local_.end() || !Offers(p, *device)) continue;
    named.insert(*device);
    if (live) folded[Coarse(it->second.key.fine, bits)] -= it->second.key.digest;
  }
  s->set_id(++next_summary_);
  s->set_bits(static_cast<uint32_t>(bits));
  s->set_interest(InterestDigest(p.interest));
  for (uint64_t sum : folded) s->add_sums(sum);
  for (const auto& device : named) {
    const bool stored = local_.count(device) > 0;
    if (stored ? !Offers(p, device) : !MayRead(p, device)) continue;
    wire::CatalogueEntry* e = c->add_entries();
    *e = LocalEntry(device);
    if (!stored) e->set_gone(true);
  }
  p.summary_id = s->id();
  p.summary_bits = bits;
  p.scan.reset();
  p.sending_after.reset();
  p.telling = Telling::kEntries;
  p.sent_first_part = true;
  ++catalogue_stats_.summaries_sent;
  catalogue_stats_.bytes_sent += env.ByteSizeLong();
  Send(peer, std::move(env));
}

// Sends the next parts of our full catalogue to `peer` while its connection is
// below the high-water mark; OnDrained resumes. Deltas of devices already sent
// follow through Flush, so the receiver's copy ends up current.
void Engine::PumpCatalogue(const std::string& peer) {
  auto p = peers_.find(peer);
  if (p == peers_.end()) return;
  Peer& pr = p->second;
  // Sends are queued actions, so high_water_ cannot change within this call: send
  // a burst that crosses the connection's high-water mark (1 MiB) and no more;
  // OnDrained brings the next one.
  if (high_water_(peer) && pr.sent_first_part) return;
  // A restart waits for RetryPaused: what is sent now would be cut to an
  // interest the peer has already left.
  if (!pr.sending_after || pr.restart_pending) return;
  if (pr.telling == Telling::kScan && !PumpSummary(peer, pr)) return;
  // An answer sends the buckets asked for alone.
  const bool answer = pr.telling == Telling::kAnswer;
  const uint32_t nbuckets = uint32_t{1} << pr.summary_bits;
  auto asked = [&](const Stored& s) {
    const uint32_t b = Coarse(s.key.fine, pr.summary_bits);
    return b < nbuckets &&
           (static_cast<unsigned char>(pr.answer_buckets[b / 8]) >> (b % 8)) & 1;
  };
  // At most kCatalogueScan devices looked at per call, whatever matched: a peer
  // whose interest matches none of many costs a bounded scan per drain or second.
  size_t burst = 0;
  size_t scanned = 0;
  while (pr.sending_after && burst < kCatalogueBurstBytes && scanned < kCatalogueScan) {
    wire::Envelope env;
    wire::Catalogue* c = env.mutable_catalogue();
    const bool first = pr.part_first;
    c->set_full(first && !answer);
    c->set_answer(first && answer);
    c->set_continues(!first);
    auto it = first ? local_.begin() : local_.upper_bound(*pr.sending_after);
    size_t bytes = 0;
    for (; it != local_.end() && bytes < kCatalogueBytes && scanned < kCatalogueScan;
         ++it, ++scanned) {
      pr.sending_after = it->first;
      if (!Offers(pr, it->first) || (answer && !asked(it->second))) continue;
      wire::CatalogueEntry* e = c->add_entries();
      *e = LocalEntry(it->first);
      bytes += e->ByteSizeLong() + 4;
    }
    c->set_more(it != local_.end());
    if (it == local_.end()) pr.sending_after.reset();
    if (!first && c->entries_size() == 0 && c->more()) continue;  // nothing to say yet
    pr.part_first = false;
    pr.sent_first_part = true;
    burst += bytes;
    catalogue_stats_.entries_sent += c->entries_size();
    catalogue_stats_.bytes_sent += env.ByteSizeLong();
    Send(peer, std::move(env));
  }
}

void Engine::OnSubscriberActive(const std::string& name,
                                std::vector<std::string> read_scope) {
  Peer& p = peers_[name] = Peer();
  p.subscriber = true;
  p.read_scope = std::move(read_scope);
  BeginCatalogue(p, Telling::kEntries);
  PumpCatalogue(name);
}

bool Engine::Offers(const Peer& p, const std::string& device) const {
  if (!MayRead(p, device)) return false;
  if (p.interest.all()) return true;
  auto it = local_.find(device);
  return it == local_.end() ? p.interest.Matches(device)
                            : p.interest.Matches(device, it->second.groups);
}

bool Engine::MayRead(const Peer& p, const std::string& device) {
  if (p.read_scope.empty()) return true;
  for (const std::string& glob : p.read_scope) {
    if (!glob.empty() && fnmatch(glob.c_str(), device.c_str(), 0) == 0) return true;
  }
  return false;
}

void Engine::OnPeerGone(const std::string& peer) {
  auto gone = peers_.find(peer);
  if (gone == peers_.end()) return;
  std::map<std::string, std::map<std::string, uint64_t>> heads;
  // Kept until a retention pass stores them: with passes off, never needed.
  if (options_.retain_every_ms > 0) HeadsOf(peer, gone->second, &heads);
  for (auto& [device, by_peer] : heads) {
    for (auto& [node, last] : by_peer) departed_heads_[device][node] = last;
  }
  peers_.erase(gone);
  ++activity_;
  std::erase_if(gapped_, [&](const auto& dp) { return dp.second == peer; });
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

// Round-trip times only rank peers that are otherwise equal (and a switch needs
// one peer twice as fast as another): a peer's first sample replans every device
// at once; a later one only when it moved by half or more since the last one
// planned, and then from RetryPaused, at most once per kRttReplanTicks. Every
// probe replanning all devices was most of what an idle node did.
void Engine::OnPeerRtt(const std::string& peer, int64_t rtt_us) {
  auto p = peers_.find(peer);
  if (p == peers_.end() || rtt_us <= 0) return;
  p->second.catalogue.rtt_us = rtt_us;
  const int64_t was = p->second.planned_rtt_us;
  if (was > 0 && 2 * rtt_us > was && 2 * rtt_us < 3 * was) return;  // within ×½..×1.5
  p->second.planned_rtt_us = rtt_us;
  if (was == 0) return Replan();  // a first sample ranks the peer now
  // Later changes (a loaded machine's round-trip times swing by more than half
  // all the time) replan at most once per kRttReplanTicks RetryPaused calls.
  rtt_replan_pending_ = true;
}

void Engine::OnMessage(const std::string& peer, wire::Envelope m) {
  if (!peers_.count(peer)) return;
  ++activity_;
  switch (m.msg_case()) {
    case wire::Envelope::kCatalogue: {
      const wire::Catalogue& c = m.catalogue();
      if (c.has_summary() || c.full() || c.answer() || c.continues())
        catalogue_stats_.bytes_received += m.ByteSizeLong();
      return OnCatalogue(peer, c);
    }
    case wire::Envelope::kSubscribe:
      return OnSubscribe(peer, m.subscribe());
    case wire::Envelope::kInterest: {
      Peer& p = peers_[peer];
      if (p.subscriber) return;
      std::vector<std::string> patterns(m.interest().follow().begin(),
                                        m.interest().follow().end());
      auto interest = Interest::Parse(patterns);
      if (!interest.ok()) return Close(peer, "interest: " + interest.status().message());
      p.interest = std::move(*interest);
      // Everything again, from the start, paced like the first catalogue. At most
      // one restart per RetryPaused call (second): a peer that keeps changing its
      // interest gets the last one, and costs no more than one scan a second.
      if (p.restarted_at == interest_clock_) {
        p.restart_pending = true;
        return;
      }
      return RestartCatalogue(peer, p);
    }
    case wire::Envelope::kCatalogueWant:
      catalogue_stats_.bytes_received += m.ByteSizeLong();
      return OnCatalogueWant(peer, m.catalogue_want());
    case wire::Envelope::kUnsubscribe:
      peers_[peer].serving.erase(m.unsubscribe().device());
      return;
    case wire::Envelope::kCredit: {
      auto& serving = peers_[peer].serving;
      auto it = serving.find(m.credit().device());
      if (it == serving.end()) return;
      // A grant for bytes of a subscription since replaced is not this one's.
      if (m.credit().sub() != 0 && m.credit().sub() != it->second.sub) return;
      it->second.credit =
          std::min(it->second.credit + ClampCredit(m.credit().bytes()), kMaxCreditBytes);
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
    case wire::Envelope::kForkNotice: {
      auto& notice = *m.mutable_fork_notice();
      if (notice.records_size() == 0) return Close(peer, "a fork notice without records");
      auto local = local_.find(notice.device());
      if (local == local_.end() || !local->second.source) return;  // not ours
      // One check per peer and device at a time: a flood costs no more work.
      if (!own_fork_checks_.insert({peer, notice.device()}).second) return;
      Action a;
      a.kind = Action::Kind::kOwnFork;
      a.peer = peer;
      a.device = notice.device();
      for (auto& r : *notice.mutable_records()) a.records.push_back(std::move(r));
      actions_.push_back(std::move(a));
      return;
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
  PumpCatalogue(peer);
  std::vector<std::string> devices;
  for (const auto& [device, s] : p->second.serving) devices.push_back(device);
  for (const auto& device : devices) Pump(peer, device);
}

void Engine::OnCatalogue(const std::string& peer, const wire::Catalogue& c) {
  Peer& p = peers_[peer];
  if (p.subscriber) return;  // it has nothing to offer
  auto& entries = p.catalogue.entries;
  size_t before = entries.size();
  // Whether this message starts or goes on with a whole catalogue (not a delta).
  const bool whole = c.has_summary() || c.full() || c.answer() || c.continues();
  if (c.has_summary()) {
    if (!TakeSummary(peer, p, c)) return;
    before = 0;
  } else if (c.full()) {
    entries.clear();
    p.catalogue_in_parts = c.more();
    p.awaiting_answer = 0;
  } else if (c.answer()) {
    if (p.awaiting_answer == 0) return Close(peer, "a catalogue answer nobody asked for");
    p.awaiting_answer = 0;
    p.catalogue_in_parts = c.more();
  } else if (c.continues()) {
    if (!p.catalogue_in_parts) return Close(peer, "catalogue part without its start");
    p.catalogue_in_parts = c.more();
  }
  if (whole) catalogue_stats_.entries_received += c.entries_size();
  for (const auto& e : c.entries()) {
    if (!journal::ValidateDeviceId(e.device()).ok()) {
      return Close(peer, "catalogue names an invalid device id");
    }
    if (e.gone()) {
      entries.erase(e.device());
      continue;
    }
    if (e.groups_size() > 32) return Close(peer, "catalogue entry names over 32 groups");
    // What we do not follow is not kept (a peer that has not heard our interest
    // yet, or ignores it, costs us nothing for it).
    // Groups: the certificate's when the device is stored here, else the claim.
    if (auto l = local_.find(e.device());
        l != local_.end() ? !WantedLocal(e.device()) : !Wanted(e.device(), e.groups())) {
      continue;
    }
    wire::CatalogueEntry& kept = entries[e.device()] = e;
    // Only the node that holds a device's key is its source, and that node is
    // named like the device (they share the certificate CN): anyone else's claim
    // would make us follow the device through it first.
    if (kept.source() && kept.device() != peer) kept.set_source(false);
  }
  if (entries.size() > options_.max_catalogue_entries) {
    return Close(peer, "catalogue exceeds " +
                           std::to_string(options_.max_catalogue_entries) + " devices");
  }
  if (entries.size() > before && OverCatalogueLimit(peer)) return;
  // A guarded device catches up to the highest head any peer reported, also
  // when that peer has gone since (then only the operator releases it).
  for (const auto& device : guarded_) {
    if (auto e = entries.find(device); e != entries.end() && !Demoted(device, peer)) {
      guard_target_[device] = std::max(guard_target_[device], e->second.last());
    }
  }
  if (p.catalogue_in_parts) return;  // plan once the whole catalogue is here
  if (whole && !p.catalogue_whole) {
    p.catalogue_whole = true;
    heard_.insert(peer);
    new_followers_ = true;
  }
  if (whole) {
    Replan();
  } else {
    std::set<std::string> named;
    for (const auto& e : c.entries()) named.insert(e.device());
    Replan(&named);
  }
  CheckGuard();
}

// A summary replaces what we knew of the peer's catalogue: for every bucket whose
// sum agrees with ours, our own entries (it holds what we hold there), and the
// others asked for.
bool Engine::TakeSummary(const std::string& peer, Peer& p, const wire::Catalogue& c) {
  const wire::CatalogueSummary& s = c.summary();
  if (s.bits() > kSummaryFineBits || s.sums_size() != (1 << s.bits()) || s.id() == 0) {
    Close(peer, "a catalogue summary of " + std::to_string(s.sums_size()) +
                    " sums for 2^" + std::to_string(s.bits()) + " buckets");
    return false;
  }
  ++catalogue_stats_.summaries_received;
  // Cut to an interest of ours it had not heard yet: the one for our Interest
  // follows. Only those compared count toward the rate (each costs a pass over
  // our catalogue); an honest peer sends at most one a second, as we change our
  // interest, and one when it becomes active.
  if (s.interest() != interest_digest_) return false;
  if (p.summary_tick != interest_clock_) {
    p.summary_tick = interest_clock_;
    p.summaries_in_tick = 0;
  }
  if (++p.summaries_in_tick > kMaxSummariesPerTick) {
    Close(peer, "catalogue summaries faster than " +
                    std::to_string(kMaxSummariesPerTick) + " a second");
    return false;
  }
  const int bits = static_cast<int>(s.bits());
  std::vector<uint64_t> ours = mine_sums_.Fold(bits);
  // The devices it names beside the sums (its own and ours) are not in them.
  for (const auto& e : c.entries()) {
    if (e.device() != peer && e.device() != options_.self) continue;
    auto it = local_.find(e.device());
    if (it != local_.end() && it->second.mine)
      ours[Coarse(it->second.key.fine, bits)] -= it->second.key.digest;
  }
  std::string want((ours.size() + 7) / 8, '\0');
  uint64_t differ = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    if (ours[i] == s.sums(static_cast<int>(i))) continue;
    want[i / 8] = static_cast<char>(want[i / 8] | (1 << (i % 8)));
    ++differ;
  }
  catalogue_stats_.buckets_agreed += ours.size() - differ;
  catalogue_stats_.buckets_asked += differ;
  auto& entries = p.catalogue.entries;
  entries.clear();
  for (const auto& [device, stored] : local_) {
    const uint32_t b = Coarse(stored.key.fine, bits);
    if (!stored.mine || (static_cast<unsigned char>(want[b / 8]) >> (b % 8)) & 1)
      continue;
    wire::CatalogueEntry& e = entries[device] = LocalEntry(device);
    e.set_source(false);  // the summary's entries name the one it is the source of
  }
  p.catalogue_in_parts = differ > 0;
  p.awaiting_answer = differ > 0 ? s.id() : 0;
  if (differ > 0) {
    wire::Envelope env;
    env.mutable_catalogue_want()->set_id(s.id());
    env.mutable_catalogue_want()->set_buckets(std::move(want));
    catalogue_stats_.bytes_sent += env.ByteSizeLong();
    Send(peer, std::move(env));
  }
  return true;
}

void Engine::OnCatalogueWant(const std::string& peer, const wire::CatalogueWant& w) {
  Peer& p = peers_[peer];
  if (p.subscriber) return Close(peer, "a subscriber asked for catalogue buckets");
  // For a summary since replaced (our catalogue started again) or answered: the
  // newer one is on its way, and one want per summary is all an answer costs.
  if (w.id() == 0 || w.id() != p.summary_id) return;
  const int bits = p.summary_bits;
  if (w.buckets().size() != ((size_t{1} << bits) + 7) / 8) {
    return Close(peer, "a catalogue want of " + std::to_string(w.buckets().size()) +
                           " bytes for 2^" + std::to_string(bits) + " buckets");
  }
  BeginCatalogue(p, Telling::kAnswer);
  p.summary_bits = bits;
  p.answer_buckets = w.buckets();
  PumpCatalogue(peer);
}

// What all peers' catalogues hold, against max_catalogue_entries_total: past it
// the peer with the most entries is closed (at once when it is `peer`, whose
// message is being handled; true then).
bool Engine::OverCatalogueLimit(const std::string& peer) {
  if (options_.max_catalogue_entries_total == 0) return false;
  size_t total = 0;
  size_t most = 0;
  std::string largest;
  for (const auto& [id, q] : peers_) {
    total += q.catalogue.entries.size();
    if (q.catalogue.entries.size() > most) {
      most = q.catalogue.entries.size();
      largest = id;
    }
  }
  if (total <= options_.max_catalogue_entries_total) return false;
  std::string reason = "the catalogues of this node's peers hold " +
                       std::to_string(total) + " entries, over its limit of " +
                       std::to_string(options_.max_catalogue_entries_total) + "; " +
                       largest + " sent the most (" + std::to_string(most) + ")";
  if (largest == peer) {
    Close(peer, reason);
    return true;
  }
  deferred_closes_.emplace_back(largest, std::move(reason));
  return false;
}

// Each device's choice depends on its own entries alone, so a catalogue delta
// replans only the devices it names (`only`); the rest (a peer come or gone, a
// round-trip time, a retry) replans them all. Either way what is copied into the
// planner's input is what it is asked about, not every peer's whole catalogue.
void Engine::Replan(const std::set<std::string>* only) {
  PlanInput in;
  auto wanted = [&](const std::string& device) {
    return only == nullptr || only->count(device) > 0;
  };
  auto excluded = [&](const std::string& device, const std::string& peer,
                      const wire::CatalogueEntry& e) {
    if (forked_.count({device, peer})) return true;
    if (auto d = demoted_.find({device, peer});
        d != demoted_.end() && d->second.left > 0) {
      return true;
    }
    return WouldGap(device, peer, e);
  };
  if (only == nullptr) {
    for (const auto& [device, info] : local_) in.local[device] = {info.last, info.source};
  } else {
    for (const auto& device : *only) {
      if (auto l = local_.find(device); l != local_.end())
        in.local[device] = {l->second.last, l->second.source};
    }
  }
  // A guarded device of ours is followed like any other until the guard lifts.
  for (const auto& device : guarded_) {
    if (wanted(device)) in.local[device].source = false;
  }
  for (const auto& [peer, p] : peers_) {
    if (p.subscriber) continue;
    PeerOffers& cat = in.peers[peer];
    cat.rtt_us = p.catalogue.rtt_us;
    if (only == nullptr) {
      for (const auto& [device, e] : p.catalogue.entries) {
        if (!excluded(device, peer, e))
          cat.offers.emplace_hint(cat.offers.end(), device, OfferOf(e));
      }
    } else {
      for (const auto& device : *only) {
        auto e = p.catalogue.entries.find(device);
        if (e != p.catalogue.entries.end() && !excluded(device, peer, e->second)) {
          cat.offers.emplace(device, OfferOf(e->second));
        }
      }
    }
  }
  // Walk what was named, not every follow: a delta costs what it names.
  auto each_follow = [&](auto&& fn) {
    if (only == nullptr) {
      for (const auto& [device, f] : following_) fn(device, f);
    } else {
      for (const auto& device : *only) {
        if (auto f = following_.find(device); f != following_.end())
          fn(device, f->second);
      }
    }
  };
  each_follow(
      [&](const std::string& device, const Follow& f) { in.current[device] = f.peer; });
  in.switch_margin = options_.switch_margin;
  in.rtt_switch_min_us = options_.rtt_switch_min_us;
  const auto plan = Plan(in);
  // A follow whose peer no longer offers the device (it dropped it, or its new
  // full catalogue lacks it) and that no other peer offers: left.
  std::vector<std::string> orphaned;
  each_follow([&](const std::string& device, const Follow& f) {
    if (f.peer.empty() || plan.count(device)) return;
    // A peer whose full catalogue is still arriving (in parts) has not said yet.
    auto p = peers_.find(f.peer);
    if (p == peers_.end() ||
        (!p->second.catalogue_in_parts && !p->second.catalogue.entries.count(device))) {
      orphaned.push_back(device);
    }
  });
  for (const auto& device : orphaned) Unfollow(device);
  for (const auto& [device, peer] : plan) {
    if (auto p = paused_.find(device); p != paused_.end() && p->second.wait > 0) continue;
    if (forgetting_.count(device)) continue;  // OnForgotten replans it
    if (guarded_.count(device) &&
        in.peers[peer].offers[device].last <= LocalLast(device)) {
      continue;  // nothing to catch up from that peer
    }
    auto it = following_.find(device);
    if (it == following_.end() || it->second.peer != peer) FollowThrough(device, peer);
  }
}

void Engine::SetInterest(Interest interest) {
  interest_ = std::move(interest);
  interest_digest_ = InterestDigest(interest_);
  unwanted_.clear();
  mine_sums_ = BucketSums();
  for (auto& [device, stored] : local_) {
    stored.mine = interest_.Matches(device, stored.groups);
    if (stored.mine) mine_sums_.Add(stored.key);
  }
  wire::Envelope env;
  env.mutable_interest();  // none: nothing but our own devices
  for (const auto& pattern : interest_.patterns())
    env.mutable_interest()->add_follow(pattern);
  for (auto& [peer, p] : peers_) {
    if (p.subscriber) continue;
    Send(peer, env);
    // Narrowed: what we no longer follow goes now. Widened: their answer (a full
    // catalogue) brings the rest.
    std::erase_if(p.catalogue.entries, [&](const auto& e) {
      return local_.count(e.first) ? !WantedLocal(e.first)
                                   : !Wanted(e.first, e.second.groups());
    });
  }
  // A follow not stored yet is kept while a peer's (claimed) entry still wants it.
  auto claimed = [&](const std::string& device) {
    for (const auto& [peer, p] : peers_) {
      if (p.catalogue.entries.count(device)) return true;
    }
    return false;
  };
  std::vector<std::string> left;
  for (const auto& [device, f] : following_) {
    if (local_.count(device) ? !WantedLocal(device) : !claimed(device))
      left.push_back(device);
  }
  for (const auto& device : left) Unfollow(device);
  ForgetUnwanted();
  Replan();
}

bool Engine::WantedLocal(const std::string& device) const {
  auto l = local_.find(device);
  return l == local_.end() ? Wanted(device, std::vector<std::string>{})
                           : Wanted(device, l->second.groups);
}

void Engine::Unfollow(const std::string& device) {
  auto it = following_.find(device);
  if (it == following_.end()) return;
  Follow& f = it->second;
  if (!f.peer.empty() && peers_.count(f.peer)) {
    wire::Envelope un;
    un.mutable_unsubscribe()->set_device(device);
    Send(f.peer, std::move(un));
  }
  if (!f.applying) {
    following_.erase(it);
  } else {
    f = Follow();  // the apply in flight completes; nothing more is asked
    f.applying = f.stale_apply = true;
  }
}

// A device with a journal write in flight (an apply, a staged part, an install)
// waits for it: those run on other threads than the delete, and one that ran
// after it would store the stream again. OnApplyDone calls this again.
void Engine::ForgetUnwanted() {
  for (const auto& [device, info] : local_) {
    if (info.source || WantedLocal(device) || forgetting_.count(device) ||
        never_forget_.count(device)) {
      continue;
    }
    if (auto f = following_.find(device); f != following_.end() && f->second.applying)
      continue;
    forgetting_.insert(device);
    Action a;
    a.kind = Action::Kind::kForget;
    a.device = device;
    actions_.push_back(std::move(a));
  }
}

void Engine::OnForgotten(const std::string& device, const Status& status) {
  forgetting_.erase(device);
  if (!status.ok()) {
    // Tried again from RetryPaused, but for what the journal will never delete.
    if (status.code() == Status::Code::kFailedPrecondition) {
      never_forget_.insert(device);
    } else {
      forget_failed_ = true;
    }
    Action a;
    a.kind = Action::Kind::kLog;
    a.reason =
        "could not delete '" + device + "', no longer followed: " + status.ToString();
    actions_.push_back(std::move(a));
    return;
  }
  // Gone from disk, whatever the interest says now: a device followed again
  // meanwhile is fetched anew, from nothing.
  if (auto it = local_.find(device); it != local_.end()) {
    Unsum(it->second);
    local_.erase(it);
  }
  ++stored_version_;
  dirty_.insert(device);  // a `gone` delta: peers following it through us replan
  for (auto& [peer, p] : peers_) {
    if (p.scan && p.sending_after && device <= *p.sending_after && MayRead(p, device))
      p.scan->changed.insert(device);
  }
  for (auto& [peer, p] : peers_) p.serving.erase(device);
  if (WantedLocal(device)) {
    const std::set<std::string> only{device};
    Replan(&only);
  }
}

std::vector<std::string> Engine::Unheld() const {
  std::vector<std::string> out;
  if (interest_.all()) return out;
  // Only what is named one by one can be looked for: a glob or a group names no
  // device until a peer offers one.
  for (const auto& device : interest_.patterns()) {
    if (device.find_first_of("*?[") != std::string::npos || device.starts_with("group:"))
      continue;
    if (auto l = local_.find(device); l != local_.end() && l->second.source) continue;
    bool offered = false;
    for (const auto& [peer, p] : peers_) {
      auto e = p.catalogue.entries.find(device);
      if (e != p.catalogue.entries.end() &&
          (e->second.last() > 0 || e->second.snapshot() > 0)) {
        offered = true;
        break;
      }
    }
    if (!offered) out.push_back(device);
  }
  return out;
}

std::vector<std::string> Engine::StoredDevices() const {
  std::vector<std::string> out;
  out.reserve(local_.size());
  for (const auto& [device, info] : local_) out.push_back(device);
  return out;
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
  f.sub = ++next_sub_;
  wire::Envelope sub;
  sub.mutable_subscribe()->set_device(device);
  sub.mutable_subscribe()->set_sub(f.sub);
  sub.mutable_subscribe()->set_from(LocalLast(device) +
                                    (plant::On("catchup-off-by-one") ? 2 : 1));
  sub.mutable_subscribe()->set_credit(options_.initial_credit_bytes);
  sub.mutable_subscribe()->set_snapshot(LocalSnapshot(device));
  Send(peer, std::move(sub));
}

void Engine::Guard(const std::set<std::string>& devices, size_t expected_peers) {
  guarded_ = devices;
  guard_expected_peers_ = expected_peers;
  if (plant::On("release-guard-at-once")) {
    for (const auto& device : devices) Release(device, "planted: released at once");
  }
  CheckGuard();
}

bool Engine::ReleaseGuard(const std::string& device, const std::string& reason) {
  if (!guarded_.count(device)) return false;
  Release(device, reason);
  return true;
}

std::string Engine::GuardState(const std::string& device) const {
  if (!guarded_.count(device)) return "";
  if (heard_.size() < guard_expected_peers_) {
    return "waiting for peers to report this device's head: heard " +
           std::to_string(heard_.size()) + " of the " +
           std::to_string(guard_expected_peers_) + " needed";
  }
  return "catching up this device's own stream from peers (to seq " +
         std::to_string(GuardTarget(device)) + ")";
}

uint64_t Engine::GuardTarget(const std::string& device) const {
  auto it = guard_target_.find(device);
  return std::max(PeerLast(device), it == guard_target_.end() ? 0 : it->second);
}

void Engine::CheckGuard() {
  if (guarded_.empty() || heard_.size() < guard_expected_peers_) return;
  const std::set<std::string> devices = guarded_;
  for (const auto& device : devices) {
    if (GuardTarget(device) > LocalLast(device)) continue;  // catching up
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

void Engine::OnOwnForkChecked(const std::string& peer, const std::string& device,
                              const Status& status) {
  own_fork_checks_.erase({peer, device});
  if (!status.ok() && !IsLocalFailure(status) && peers_.count(peer)) {
    Close(peer, "a fork notice about '" + device +
                    "' that does not hold: " + status.ToString());
  }
}

bool Engine::WouldGap(const std::string& device, const std::string& peer,
                      const wire::CatalogueEntry& e) const {
  if (gapped_.count({device, peer})) return true;  // the journal said so
  if (accept_gap_.count(device)) return false;
  auto local = local_.find(device);
  if (local == local_.end() || local->second.last == 0) return false;
  // It would serve events from our head + 1 only if it still stores them.
  return e.last() > local->second.last && e.first() > local->second.last + 1;
}

std::string Engine::Stalled(const std::string& device) const {
  auto local = local_.find(device);
  if (local == local_.end() || local->second.last == 0) return "";
  if (local->second.source && !guarded_.count(device)) return "";  // ours, appending
  const uint64_t ours = local->second.last;
  // Followed through a peer that holds more: moving. Through one that holds no
  // more than we do (the only peer the plan could take), it is as stuck as not
  // following: two such relays would each wait for the other.
  if (auto f = following_.find(device); f != following_.end()) {
    auto p = peers_.find(f->second.peer);
    if (p == peers_.end()) return "";
    auto e = p->second.catalogue.entries.find(device);
    if (e == p->second.catalogue.entries.end() || e->second.last() > ours) return "";
  }
  uint64_t best = 0, first = 0;
  for (const auto& [peer, p] : peers_) {
    if (p.subscriber) continue;
    auto it = p.catalogue.entries.find(device);
    if (it == p.catalogue.entries.end() || it->second.last() <= ours) continue;
    if (!WouldGap(device, peer, it->second)) return "";  // followed on the next plan
    if (it->second.last() > best) {
      best = it->second.last();
      first = it->second.first();
    }
  }
  if (best == 0) return "";
  return "peers hold up to " + std::to_string(best) + " but store events only from " +
         std::to_string(first) + ", after our head " + std::to_string(ours) +
         ": their snapshot cannot be checked against our events; waiting for a peer " +
         "that stores " + std::to_string(ours + 1) + ".., or `cairn resync " + device +
         "` to accept the gap";
}

void Engine::AcceptGap(const std::string& device) {
  auto local = local_.find(device);
  accept_gap_[device] = local == local_.end() ? 0 : local->second.last;
  std::erase_if(gapped_, [&](const auto& dp) { return dp.first == device; });
  Replan();
}

void Engine::HeadsOf(const std::string& peer, const Peer& p,
                     std::map<std::string, std::map<std::string, uint64_t>>* out) const {
  if (p.subscriber) return;
  for (const auto& [device, e] : p.catalogue.entries) {
    if (local_.count(device)) (*out)[device][peer] = e.last();
  }
  if (!p.catalogue_whole) return;
  // Every node replicates every device: one its whole catalogue lacks (a new
  // device, a wiped peer) it holds nothing of yet.
  for (const auto& [device, info] : local_) {
    if (!p.catalogue.entries.count(device)) (*out)[device][peer] = 0;
  }
}

std::map<std::string, std::map<std::string, uint64_t>> Engine::FollowerHeads() const {
  // Peers that left since the last pass count with what they last reported: a
  // follower connected only between two passes is still a follower.
  std::map<std::string, std::map<std::string, uint64_t>> out = departed_heads_;
  for (const auto& [peer, p] : peers_) HeadsOf(peer, p, &out);
  return out;
}

void Engine::OnFollowersNoted(
    const std::map<std::string, std::map<std::string, uint64_t>>& noted) {
  for (auto d = departed_heads_.begin(); d != departed_heads_.end();) {
    auto n = noted.find(d->first);
    if (n != noted.end()) {
      std::erase_if(d->second, [&](const auto& ph) {
        auto it = n->second.find(ph.first);
        return it != n->second.end() && it->second == ph.second;
      });
    }
    d = d->second.empty() ? departed_heads_.erase(d) : std::next(d);
  }
}

std::map<std::string, uint64_t> Engine::ServeFloors() const {
  std::map<std::string, uint64_t> out;
  for (const auto& [peer, p] : peers_) {
    for (const auto& [device, s] : p.serving) {
      auto [it, fresh] = out.try_emplace(device, s.next);
      if (!fresh) it->second = std::min(it->second, s.next);
    }
  }
  return out;
}

std::string Engine::SourcePeer(const std::string& device) const {
  for (const auto& [peer, p] : peers_) {
    auto it = p.catalogue.entries.find(device);
    if (it != p.catalogue.entries.end() && it->second.source()) return peer;
  }
  return "";
}

std::string Engine::Via(const std::string& device) const {
  auto it = following_.find(device);
  return it == following_.end() ? std::string() : it->second.peer;
}

uint64_t Engine::PeerLast(const std::string& device) const {
  uint64_t best = 0;
  for (const auto& [peer, p] : peers_) {
    if (Demoted(device, peer)) continue;  // its claims do not count
    auto it = p.catalogue.entries.find(device);
    if (it != p.catalogue.entries.end()) best = std::max(best, it->second.last());
  }
  return best;
}

bool Engine::Demoted(const std::string& device, const std::string& peer) const {
  auto it = demoted_.find({device, peer});
  return it != demoted_.end() && it->second.left > 0;
}

void Engine::CheckProgress() {
  bool replan = false;
  for (auto it = demoted_.begin(); it != demoted_.end();) {
    Demotion& d = it->second;
    if (d.left > 0) {
      if (--d.left == 0) replan = true;  // back on trial
      ++it;
    } else if (++d.quiet >= options_.forget_demotion_ticks) {
      it = demoted_.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<std::pair<std::string, std::string>> stalled;
  for (auto& [device, f] : following_) {
    const bool heard = std::exchange(f.heard, false);
    auto p = peers_.find(f.peer);
    if (p == peers_.end()) continue;
    auto e = p->second.catalogue.entries.find(device);
    const bool claims_more =
        e != p->second.catalogue.entries.end() && e->second.last() > LocalLast(device);
    if (!claims_more || heard || f.applying || !f.queue.empty()) {
      f.idle_ticks = 0;
    } else if (++f.idle_ticks >= options_.stall_demote_ticks) {
      stalled.emplace_back(device, f.peer);
    }
  }
  for (const auto& [device, peer] : stalled) {
    const uint64_t claim = peers_[peer].catalogue.entries[device].last();
    Demotion& d = demoted_[{device, peer}];
    d.left = options_.demote_for_ticks << std::min(d.strikes++, 5);
    d.quiet = 0;
    following_.erase(device);
    wire::Envelope un;
    un.mutable_unsubscribe()->set_device(device);
    Send(peer, std::move(un));
    if (guarded_.count(device)) {
      // Its claim no longer holds the guard: the target is what the others say.
      uint64_t target = 0;
      for (const auto& [other, o] : peers_) {
        if (other == peer || o.subscriber) continue;
        if (auto it = o.catalogue.entries.find(device); it != o.catalogue.entries.end())
          target = std::max(target, it->second.last());
      }
      guard_target_[device] = target;
    }
    Action a;
    a.kind = Action::Kind::kLog;
    a.reason =
        "peer " + peer + " claims '" + device + "' up to " + std::to_string(claim) +
        " but sent nothing of it for " + std::to_string(options_.stall_demote_ticks) +
        " s: following it through other peers for " + std::to_string(d.left) + " s";
    actions_.push_back(std::move(a));
    replan = true;
  }
  if (replan) {
    Replan();
    CheckGuard();
  }
}

}  // namespace cairn::sync
