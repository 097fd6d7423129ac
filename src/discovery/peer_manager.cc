// The peer table: entries, their states, backoff, purgatory, sources and timers.
// Connection events and the hello exchange are in peer_manager_conn.cc.
#include "discovery/peer_manager.h"

#include <algorithm>

#include "base/check.h"
#include "discovery/address.h"

namespace cairn::discovery {
const char* StateName(PeerState state) {
  switch (state) {
    case PeerState::kOutgoing:
      return "outgoing";
    case PeerState::kIncoming:
      return "incoming";
    case PeerState::kActive:
      return "active";
    case PeerState::kLifesupport:
      return "lifesupport";
    case PeerState::kPurgatory:
      return "purgatory";
    case PeerState::kDeleted:
      return "deleted";
  }
  return "unknown";
}

PeerManager::PeerManager(std::string self_id, std::string advertise, Options options,
                         Clock* clock, Rng* rng)
    : self_id_(std::move(self_id)),
      advertise_(std::move(advertise)),
      options_(options),
      clock_(clock),
      rng_(rng) {
  CHECK(clock_ != nullptr && rng_ != nullptr);
  CHECK(options_.backoff_initial_ms > 0 &&
        options_.backoff_max_ms >= options_.backoff_initial_ms);
  CHECK(options_.ping_interval_ms > 0 && options_.dead_interval_ms > 0 &&
        options_.rtt_probe_interval_ms > 0);
  next_exchange_ = clock_->MonotonicMicros() + options_.exchange_interval_ms * 1000;
}

// ---------------------------------------------------------------- entries

PeerManager::Entry* PeerManager::Find(const std::string& key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

std::string PeerManager::KeyOfAddress(const std::string& address) const {
  for (const auto& [key, e] : entries_) {
    if (std::find(e.addresses.begin(), e.addresses.end(), address) != e.addresses.end()) {
      return key;
    }
  }
  return "";
}

PeerManager::Entry* PeerManager::NewEntry(const std::string& key, const std::string& why,
                                          bool verified) {
  if (entries_.size() >= options_.max_peers &&
      (!verified || !EvictUnverified("evicted for " + key + ": the table is full"))) {
    return nullptr;
  }
  Entry& e = entries_[key];
  e.since_us = clock_->NowMicros();
  e.reason = why;
  e.verified = verified;
  return &e;
}

// The oldest entry that never completed a hello and is neither pinned nor in
// the middle of one goes, so that what a peer exchange brought never keeps a
// verified peer out.
bool PeerManager::EvictUnverified(const std::string& why) {
  std::string victim;
  int64_t oldest = INT64_MAX;
  for (const auto& [key, e] : entries_) {
    if (e.verified || e.pinned || e.state == PeerState::kActive ||
        e.state == PeerState::kIncoming) {
      continue;
    }
    if (e.since_us < oldest) {
      oldest = e.since_us;
      victim = key;
    }
  }
  if (victim.empty()) return false;
  Entry& e = entries_.at(victim);
  if (e.conn != 0 && conns_.count(e.conn)) CloseConn(e.conn, why, true);
  Delete(victim, why);
  return true;
}

void PeerManager::AddAddress(Entry& e, const std::string& address, bool front) {
  if (!SplitHostPort(address)) return;
  auto it = std::find(e.addresses.begin(), e.addresses.end(), address);
  if (it != e.addresses.end()) {
    if (front) std::rotate(e.addresses.begin(), it, it + 1);
    return;
  }
  if (e.addresses.size() >= options_.max_addresses_per_peer) {
    if (!front) return;
    e.addresses.pop_back();
  }
  e.addresses.insert(front ? e.addresses.begin() : e.addresses.end(), address);
}

void PeerManager::SetState(Entry& e, const std::string& key, PeerState to,
                           const std::string& why) {
  Log(key, e.state, to, why);
  e.state = to;
  e.reason = why;
  e.since_us = clock_->NowMicros();
}

void PeerManager::Log(const std::string& peer, PeerState from, PeerState to,
                      const std::string& why) {
  transitions_.push_back(Transition{clock_->NowMicros(), peer, from, to, why});
  while (transitions_.size() > options_.max_transitions) transitions_.pop_front();
}

std::optional<std::string> PeerManager::PickAddress(Entry& e) {
  const size_t n = e.addresses.size();
  for (size_t i = 0; i < n; ++i) {
    size_t index = (e.next_address + i) % n;
    const std::string& a = e.addresses[index];
    if (self_addresses_.count(a) != 0 || Blocked(a)) continue;
    e.next_address = index + 1;
    return a;
  }
  return std::nullopt;
}

void PeerManager::Dial(const std::string& key, const std::string& why) {
  Entry* e = Find(key);
  if (e == nullptr) return;
  e->spare = false;
  std::optional<std::string> address = PickAddress(*e);
  if (!address) {
    int64_t until = INT64_MAX;
    for (const std::string& a : e->addresses) {
      auto p = purgatory_.find(a);
      if (p != purgatory_.end()) until = std::min(until, p->second.until_mono);
    }
    if (until == INT64_MAX) return Delete(key, "no address left to dial");
    e->next_mono = until;
    return SetState(*e, key, PeerState::kLifesupport, "every address is in purgatory");
  }
  ConnId conn = NewConn(/*outgoing=*/true, *address, key);
  e->conn = conn;
  SetState(*e, key, PeerState::kOutgoing, why + ": dialling " + *address);
  ++connect_attempts_;
  actions_.push_back(Action::Connect(conn, *address));
}

size_t PeerManager::Connections() const {
  size_t n = 0;
  for (const auto& [key, e] : entries_) {
    n += e.state == PeerState::kActive || e.state == PeerState::kOutgoing ||
         e.state == PeerState::kIncoming;
  }
  return n;
}

bool PeerManager::Room() const {
  return options_.target_peers == 0 || Connections() < options_.target_peers;
}

void PeerManager::DialOrPark(const std::string& key, const std::string& why) {
  Entry* e = Find(key);
  if (e == nullptr) return;
  if (e->pinned || Room()) return Dial(key, why);
  e->spare = true;
  SetState(*e, key, PeerState::kLifesupport,
           "spare: " + std::to_string(Connections()) +
               " peers connected or being dialled, the target is " +
               std::to_string(options_.target_peers) + " (" + why + ")");
}

// A slot is free (a peer went, a dial failed): spares, drawn at random so that
// the mesh does not converge on the same few nodes, are dialled until the target
// is met again.
void PeerManager::FillSlots() {
  if (options_.target_peers == 0) return;
  while (Room()) {
    std::vector<std::string> spares;
    for (const auto& [key, e] : entries_) {
      if (e.state == PeerState::kLifesupport && e.spare) spares.push_back(key);
    }
    if (spares.empty()) return;
    Dial(spares[rng_->Uniform(spares.size())], "a free slot (below the target of " +
                                                   std::to_string(options_.target_peers) +
                                                   " peers)");
  }
}

int64_t PeerManager::Backoff(uint32_t attempts) {
  int64_t delay_ms = options_.backoff_initial_ms;
  for (uint32_t i = 0; i < attempts && delay_ms < options_.backoff_max_ms; ++i) {
    delay_ms *= 2;
  }
  const int64_t d_us = std::min(delay_ms, options_.backoff_max_ms) * 1000;
  // "Equal jitter": uniform in [d/2, d], so peers that lost each other together do
  // not all come back at the same instant.
  return d_us / 2 +
         static_cast<int64_t>(rng_->Uniform(static_cast<uint64_t>(d_us / 2) + 1));
}

void PeerManager::ToLifesupport(const std::string& key, const std::string& why) {
  Entry* e = Find(key);
  if (e == nullptr) return;
  e->conn = 0;
  if (!e->pinned && e->attempts >= options_.max_attempts) {
    return Delete(key,
                  why + "; gave up after " + std::to_string(e->attempts) + " attempts");
  }
  bool dialable =
      std::any_of(e->addresses.begin(), e->addresses.end(),
                  [&](const std::string& a) { return self_addresses_.count(a) == 0; });
  if (!dialable) return Delete(key, why + "; no address to dial");
  e->next_mono = clock_->MonotonicMicros() + Backoff(e->attempts);
  e->spare = false;  // it waits for its backoff first
  SetState(*e, key, PeerState::kLifesupport, why);
  Save(*e);
}

void PeerManager::Delete(const std::string& key, const std::string& why) {
  Entry* e = Find(key);
  if (e == nullptr) return;
  Log(key, e->state, PeerState::kDeleted, why);
  if (!e->node_id.empty()) {
    actions_.push_back(Action::ErasePeer(e->node_id));
  }
  entries_.erase(key);
  holdings_dirty_.erase(key);
  std::erase_if(holder_tried_, [&](const auto& dn) { return dn.second == key; });
}

void PeerManager::ToPurgatory(const std::string& address, const std::string& node_id,
                              const std::string& why) {
  if (purgatory_.size() >= options_.max_purgatory && purgatory_.count(address) == 0) {
    auto oldest = std::min_element(purgatory_.begin(), purgatory_.end(),
                                   [](const auto& a, const auto& b) {
                                     return a.second.until_mono < b.second.until_mono;
                                   });
    purgatory_.erase(oldest);
  }
  purgatory_[address] =
      Purgatory{node_id, why, clock_->NowMicros(),
                clock_->MonotonicMicros() + options_.purgatory_ms * 1000};
  Log(node_id.empty() ? address : node_id + " " + address, PeerState::kDeleted,
      PeerState::kPurgatory, why);
}

bool PeerManager::Blocked(const std::string& address) const {
  auto it = purgatory_.find(address);
  return it != purgatory_.end() && it->second.until_mono > clock_->MonotonicMicros();
}

void PeerManager::Save(const Entry& e) {
  // Nothing a peer exchange brought is kept before a hello proved it.
  if (e.node_id.empty() || !(e.verified || e.pinned)) return;
  wire::PeerRecord r;
  r.set_node_id(e.node_id);
  for (const std::string& address : e.addresses) r.add_addresses(address);
  r.set_last_seen_us(e.last_seen_us);
  r.set_attempts(e.attempts);
  r.set_pinned(e.pinned);
  actions_.push_back(Action::SavePeer(std::move(r)));
}

// ---------------------------------------------------------------- time

std::optional<int64_t> PeerManager::NextDeadline() const {
  std::optional<int64_t> next;
  auto consider = [&next](int64_t t) { next = next ? std::min(*next, t) : t; };
  for (const auto& [key, e] : entries_) {
    if (e.state == PeerState::kLifesupport && !e.spare) consider(e.next_mono);
  }
  for (const auto& [address, p] : purgatory_) consider(p.until_mono);
  const int64_t ping_us = options_.ping_interval_ms * 1000;
  const int64_t dead_us = options_.dead_interval_ms * 1000;
  const int64_t probe_us = options_.rtt_probe_interval_ms * 1000;
  for (const auto& [id, c] : conns_) {
    if (!c.opened || c.closing) continue;
    if (!c.hello_done) {
      consider(c.opened_mono + options_.hello_timeout_ms * 1000);
    } else {
      consider(c.last_rx_mono + (c.ping_outstanding ? dead_us : ping_us));
      if (c.probe_nonce == 0) consider(c.probe_sent_mono + probe_us);
    }
  }
  for (const auto& [name, d] : dns_) {
    if (!d.pending) consider(d.next_mono);
  }
  if (options_.peer_exchange && !ActivePeers().empty()) consider(next_exchange_);
  if (!holdings_dirty_.empty()) consider(next_holdings_forward_);
  return next;
}

void PeerManager::OnTimer() {
  const int64_t now = clock_->MonotonicMicros();
  TimerConns(now);
  TimerEntries(now);
  TimerDns(now);
  if (options_.peer_exchange && now >= next_exchange_) {
    next_exchange_ = now + options_.exchange_interval_ms * 1000;
    for (const auto& [key, e] : entries_) {
      if (e.state == PeerState::kActive) SendExchange(e.conn, key);
    }
    holdings_dirty_.clear();  // what changed went with it
  }
  if (!holdings_dirty_.empty() && now >= next_holdings_forward_) ForwardHoldings(now);
}

void PeerManager::TimerEntries(int64_t now) {
  for (auto it = purgatory_.begin(); it != purgatory_.end();) {
    if (it->second.until_mono > now) {
      ++it;
      continue;
    }
    Log(it->first, PeerState::kPurgatory, PeerState::kDeleted, "purgatory over");
    it = purgatory_.erase(it);
  }
  std::vector<std::string> due;
  for (const auto& [key, e] : entries_) {
    if (e.state == PeerState::kLifesupport && !e.spare && e.next_mono <= now) {
      due.push_back(key);
    }
  }
  for (const std::string& key : due) {
    DialOrPark(key, "reconnect attempt " + std::to_string(Find(key)->attempts + 1));
  }
  FillSlots();
}

void PeerManager::TimerConns(int64_t now) {
  for (auto& [id, c] : conns_) Heartbeat(c, now);
}

void PeerManager::TimerDns(int64_t now) {
  for (auto& [name, d] : dns_) {
    if (d.pending || d.next_mono > now) continue;
    d.pending = true;
    actions_.push_back(Action::Resolve(name));
  }
}

std::vector<Action> PeerManager::TakeActions() {
  std::vector<Action> out;
  out.swap(actions_);
  return out;
}

// ---------------------------------------------------------------- queries

std::string SubscriberName(const std::string& id, ConnId conn) {
  return id + "#" + std::to_string(conn);
}

std::optional<ConnId> PeerManager::ActiveConnection(const std::string& node_id) const {
  if (auto s = subscribers_.find(node_id); s != subscribers_.end()) return s->second;
  auto it = entries_.find(node_id);
  if (it == entries_.end() || it->second.state != PeerState::kActive) return std::nullopt;
  return it->second.conn;
}

std::optional<std::string> PeerManager::ActiveName(ConnId conn) const {
  auto c = conns_.find(conn);
  if (c == conns_.end() || !c->second.hello_done) return std::nullopt;
  if (c->second.subscriber) return c->second.key;
  auto it = entries_.find(c->second.key);
  if (it == entries_.end() || it->second.state != PeerState::kActive ||
      it->second.conn != conn) {
    return std::nullopt;
  }
  return it->first;
}

std::vector<std::string> PeerManager::ActivePeers() const {
  std::vector<std::string> out;
  for (const auto& [key, e] : entries_) {
    if (e.state == PeerState::kActive) out.push_back(key);
  }
  return out;
}

std::vector<PeerStatus> PeerManager::Snapshot() const {
  std::vector<PeerStatus> out;
  const int64_t now = clock_->MonotonicMicros();
  for (const auto& [key, e] : entries_) {
    int64_t next = e.state == PeerState::kLifesupport && !e.spare ? e.next_mono - now : 0;
    int64_t rtt = 0;
    if (e.state == PeerState::kActive) {
      auto c = conns_.find(e.conn);
      if (c != conns_.end()) rtt = c->second.rtt_us;
    }
    out.push_back(PeerStatus{e.node_id, e.addresses, e.state, e.reason, e.since_us,
                             e.last_seen_us, e.attempts, e.pinned, next, rtt});
  }
  for (const auto& [address, p] : purgatory_) {
    out.push_back(PeerStatus{p.node_id,
                             {address},
                             PeerState::kPurgatory,
                             p.reason,
                             p.since_us,
                             0,
                             0,
                             false,
                             p.until_mono - now});
  }
  return out;
}

}  // namespace cairn::discovery
