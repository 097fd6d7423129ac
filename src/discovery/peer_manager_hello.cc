// The hello exchange: identity and version checks, self connections, naming the
// entry a seed or DNS address turned out to be, and duplicate connections.
#include <algorithm>

#include "discovery/address.h"
#include "discovery/peer_manager.h"

namespace cairn::discovery {

void PeerManager::OnHello(Conn& c, const wire::Hello& hello) {
  if (c.hello_done) return CloseConn(c.id, "protocol error: second hello", true);
  if (!CheckHello(c, hello)) return;
  if (hello.subscriber()) return OnSubscriberHello(c);
  if (c.reader) {
    actions_.push_back(Action::Log(c.verified_id,
                                   "refused: a reader certificate said hello "
                                   "as a node; it may only subscribe"));
    return CloseConn(
        c.id,
        "certificate '" + c.verified_id +
            "' is a reader's (TLS client only): it may subscribe, nothing else",
        true);
  }
  std::optional<std::string> id = Identify(c, hello);
  if (!id) return;
  if (!c.outgoing && options_.max_active > 0) {
    const Entry* e = Find(*id);
    const bool already = e != nullptr && e->state == PeerState::kActive;
    // Our own dials in flight count: each may become active too.
    size_t taken = 0;
    for (const auto& [key, other] : entries_) {
      taken += other.state == PeerState::kActive || other.state == PeerState::kOutgoing;
    }
    if (!already && !(e != nullptr && e->pinned) && taken >= options_.max_active) {
      // Where to go instead, then a goodbye that says we are full.
      if (options_.peer_exchange) SendExchange(c.id, *id);
      const std::string why = "peer limit reached: " + std::to_string(taken) +
                              " peers active or being dialled (--max-peers " +
                              std::to_string(options_.max_active) + ")";
      actions_.push_back(Action::Log(*id, "sent elsewhere: " + why));
      return CloseConn(c.id, why, true, /*full=*/true);
    }
  }
  c.hello_done = true;
  Activate(c, *id, hello);
}

bool PeerManager::CheckHello(Conn& c, const wire::Hello& hello) {
  if (hello.node_id() != c.verified_id) {
    CloseConn(c.id,
              "hello names node '" + hello.node_id() + "' but its certificate says '" +
                  c.verified_id + "'",
              true);
    return false;
  }
  const uint32_t v = hello.protocol_version();
  if (v < kMinProtocolVersion || v > kProtocolVersion) {
    CloseConn(c.id,
              "incompatible protocol version " + std::to_string(v) +
                  " (this node speaks " + std::to_string(kMinProtocolVersion) + ".." +
                  std::to_string(kProtocolVersion) + ")",
              true);
    return false;
  }
  if (!hello.advertise().empty() && !SplitHostPort(hello.advertise())) {
    CloseConn(
        c.id,
        "protocol error: advertised address '" + hello.advertise() + "' is not HOST:PORT",
        true);
    return false;
  }
  return true;
}

// A subscriber is no peer: it gives back the entry its connection claimed and is
// active, under its SubscriberName, for as long as the connection lasts.
void PeerManager::OnSubscriberHello(Conn& c) {
  if (c.outgoing) {
    return CloseConn(
        c.id, "protocol error: " + c.address + " answered as a subscriber, not a node",
        true);
  }
  ReleaseClaim(c);
  if (subscribers_.size() >= options_.max_subscribers) {
    return CloseConn(
        c.id, "too many subscribers (" + std::to_string(options_.max_subscribers) + ")",
        true);
  }
  size_t mine = 0;
  for (const auto& [id, other] : conns_) {
    if (other.subscriber && !other.closing && other.verified_id == c.verified_id) ++mine;
  }
  if (mine >= options_.max_subscribers_per_cert) {
    actions_.push_back(Action::Log(
        c.verified_id, "refused a subscriber: " + std::to_string(mine) +
                           " subscriptions open with its "
                           "certificate (limit " +
                           std::to_string(options_.max_subscribers_per_cert) + ")"));
    return CloseConn(c.id,
                     "too many subscribers with certificate '" + c.verified_id + "' (" +
                         std::to_string(options_.max_subscribers_per_cert) + ")",
                     true);
  }
  c.hello_done = true;
  c.subscriber = true;
  c.key = SubscriberName(c.verified_id, c.id);
  subscribers_[c.key] = c.id;
  actions_.push_back(Action::SubscriberActive(c.key, c.id, c.read_scope));
}

void PeerManager::ReleaseClaim(Conn& c) {
  Entry* e = Find(c.key);
  if (e == nullptr || e->conn != c.id) return;
  const std::string why = "the connection from " + c.address + " is a subscriber";
  if (c.claimed_from) {
    Log(c.key, e->state, c.claimed_from->state, why);
    *e = std::move(*c.claimed_from);
    c.claimed_from.reset();
  } else if (c.claimed_new) {
    Log(c.key, e->state, PeerState::kDeleted, why);
    entries_.erase(c.key);
  }
}

// Settles which entry the connection belongs to, now that the peer's id is known.
// Returns the id, or nothing when the connection was closed instead.
std::optional<std::string> PeerManager::Identify(Conn& c, const wire::Hello& hello) {
  const std::string& id = hello.node_id();
  Entry* e = Find(c.key);
  if (id == self_id_) {
    OnSelfConnection(c, e);
    return std::nullopt;
  }
  if (c.outgoing && e != nullptr && !e->node_id.empty() && e->node_id != id) {
    std::erase(e->addresses, c.address);
    CloseConn(
        c.id,
        "expected node '" + e->node_id + "' at " + c.address + ", found '" + id + "'",
        true);
    return std::nullopt;
  }
  if (e != nullptr && e->node_id.empty()) NameEntry(c, *e, id);
  if (Find(id) == nullptr) {
    Entry* fresh = NewEntry(id, "hello", /*verified=*/true);
    if (fresh == nullptr) {
      CloseConn(c.id, "peer table full", true);
      return std::nullopt;
    }
    fresh->node_id = id;
    fresh->state = c.outgoing ? PeerState::kOutgoing : PeerState::kIncoming;
    c.key = id;
  }
  return id;
}

// We dialled ourselves: the address goes to purgatory and is never dialled again.
void PeerManager::OnSelfConnection(Conn& c, Entry* e) {
  const std::string why = "connected to ourselves";
  if (c.outgoing) {
    self_addresses_.insert(c.address);
    ToPurgatory(c.address, self_id_, why);
    if (e != nullptr && e->node_id.empty()) {
      Log(c.key, e->state, PeerState::kPurgatory, why);
      entries_.erase(c.key);
    }
  }
  CloseConn(c.id, why, true);
}

// A seed or DNS address entry answered as `id`: from now on it is the entry of `id`.
void PeerManager::NameEntry(Conn& c, Entry& e, const std::string& id) {
  Entry named = std::move(e);
  entries_.erase(c.key);
  Log(c.key, named.state, PeerState::kDeleted, "identified as " + id);
  if (Entry* existing = Find(id)) {
    for (const std::string& a : named.addresses) AddAddress(*existing, a, false);
    existing->pinned = existing->pinned || named.pinned;
  } else {
    named.node_id = id;
    entries_.emplace(id, std::move(named));
  }
  c.key = id;
}

void PeerManager::Activate(Conn& c, const std::string& id, const wire::Hello& hello) {
  Entry& e = *Find(id);
  if (c.outgoing) AddAddress(e, c.address, /*front=*/hello.advertise().empty());
  if (!hello.advertise().empty()) AddAddress(e, hello.advertise(), /*front=*/true);
  if (e.state == PeerState::kActive && e.conn != c.id && conns_.count(e.conn) != 0) {
    return ResolveDuplicate(c, e, id, hello);
  }
  const std::string why = c.outgoing ? "hello exchanged on connection to " + c.address
                                     : "hello exchanged on connection from " + c.address;
  MakeActive(c, e, id, why);
}

// Two live connections to one peer: keep exactly one, the same one at both ends.
// An old connection silent past the ping interval loses to the new one; otherwise
// the connection opened by the smaller node id survives; when we opened both (or
// they did), the one already active stays.
void PeerManager::ResolveDuplicate(Conn& neu, Entry& e, const std::string& id,
                                   const wire::Hello& /*hello*/) {
  Conn& old = conns_.at(e.conn);
  const int64_t silent = clock_->MonotonicMicros() - old.last_rx_mono;
  bool neu_wins = false;
  std::string why;
  if (silent >= options_.ping_interval_ms * 1000) {
    neu_wins = true;
    why = "replaced by a new connection (old one silent for " +
          std::to_string(silent / 1000) + " ms)";
  } else if (old.outgoing != neu.outgoing) {
    const bool we_are_smaller = self_id_ < id;
    neu_wins = neu.outgoing == we_are_smaller;
    why = "duplicate connection: keeping the one opened by " +
          (we_are_smaller ? self_id_ : id);
  } else {
    why = "duplicate connection: already active";
  }
  Conn& loser = neu_wins ? old : neu;
  ToPurgatory(loser.outgoing ? loser.address : "from " + loser.address, id, why);
  CloseConn(loser.id, why, true);
  if (!neu_wins) return;
  actions_.push_back(Action::PeerGone(id, why));
  MakeActive(neu, e, id, why);
}

void PeerManager::MakeActive(Conn& c, Entry& e, const std::string& id,
                             const std::string& why) {
  e.conn = c.id;
  e.attempts = 0;
  e.verified = true;
  e.last_seen_us = clock_->NowMicros();
  SetState(e, id, PeerState::kActive, why);
  Save(e);
  // Timed from the start, so that planning can rank this peer by round-trip time
  // soon after its catalogue arrives.
  SendPing(c, clock_->MonotonicMicros());
  actions_.push_back(Action::PeerActive(id, c.id));
  if (own_holdings_) {
    wire::Envelope m;
    *m.mutable_holdings() = *own_holdings_;
    Send(c.id, std::move(m));
  }
  if (!options_.peer_exchange) return;
  SendExchange(c.id, id);
  AnnounceToOthers(id);
}

}  // namespace cairn::discovery
