// Connections of the peer table: the hello exchange in both directions, self and
// duplicate connections, heartbeats, peer exchange and messages for the layer above.
#include <algorithm>

#include "discovery/address.h"
#include "discovery/holdings.h"
#include "discovery/peer_manager.h"

namespace cairn::discovery {
namespace {

// The name of the message an Envelope carries ("hello", "events"), for reasons.
std::string MessageName(const wire::Envelope& m) {
  const auto* field = wire::Envelope::descriptor()->FindFieldByNumber(m.msg_case());
  return field == nullptr ? "an empty or unknown message" : field->name();
}

std::string Ms(int64_t us) { return std::to_string(us / 1000) + " ms"; }

}  // namespace

ConnId PeerManager::NewConn(bool outgoing, const std::string& address,
                            const std::string& key) {
  ConnId id = next_conn_++;
  Conn& c = conns_[id];
  c.id = id;
  c.outgoing = outgoing;
  c.address = address;
  c.key = key;
  return id;
}

void PeerManager::OnOpened(ConnId conn, const std::string& verified_id,
                           const std::string& /*remote_address*/) {
  auto it = conns_.find(conn);
  if (it == conns_.end() || it->second.closing || it->second.opened) return;
  Conn& c = it->second;
  c.opened = true;
  c.verified_id = verified_id;
  c.opened_mono = c.last_rx_mono = clock_->MonotonicMicros();
  SendHello(conn);
}

ConnId PeerManager::OnIncomingOpened(const std::string& verified_id,
                                     const std::string& remote_address, bool reader,
                                     std::vector<std::string> read_scope) {
  const size_t pending = PendingFrom(verified_id);
  ConnId id = NewConn(/*outgoing=*/false, remote_address, verified_id);
  Conn& c = conns_[id];
  c.opened = true;
  c.verified_id = verified_id;
  c.reader = reader;
  c.read_scope = std::move(read_scope);
  c.opened_mono = c.last_rx_mono = clock_->MonotonicMicros();
  if (pending >= options_.max_pending_per_cert) {
    const std::string why = std::to_string(pending) + " connections of '" + verified_id +
                            "' have not completed their hello (limit " +
                            std::to_string(options_.max_pending_per_cert) + ")";
    actions_.push_back(Action::Log(
        verified_id, "refused a connection from " + remote_address + ": " + why));
    CloseConn(id, why, /*goodbye=*/false);
    return id;
  }
  SendHello(id);
  if (verified_id == self_id_ || reader) return id;  // a reader never takes an entry
  Entry* e = Find(verified_id);
  if (e == nullptr) {
    e = NewEntry(verified_id, "incoming connection", /*verified=*/true);  // by its CA
    if (e == nullptr) return id;  // table full: refused at hello
    e->node_id = verified_id;
    c.claimed_new = true;
  } else if (e->state != PeerState::kLifesupport) {
    return id;  // already dialling or active: settled at hello
  } else {
    c.claimed_from = *e;
  }
  e->conn = id;
  SetState(*e, verified_id, PeerState::kIncoming,
           "incoming connection from " + remote_address);
  return id;
}

size_t PeerManager::PendingFrom(const std::string& verified_id) const {
  size_t n = 0;
  for (const auto& [id, c] : conns_) {
    if (!c.outgoing && !c.hello_done && !c.closing && c.verified_id == verified_id) ++n;
  }
  return n;
}

void PeerManager::SendHello(ConnId conn) {
  wire::Envelope m;
  wire::Hello* hello = m.mutable_hello();
  hello->set_node_id(self_id_);
  hello->set_protocol_version(kProtocolVersion);
  hello->set_advertise(advertise_);
  hello->set_time_us(clock_->NowMicros());
  Send(conn, std::move(m));
}

void PeerManager::Send(ConnId conn, wire::Envelope envelope) {
  actions_.push_back(Action::Send(conn, std::move(envelope)));
}

void PeerManager::CloseConn(ConnId conn, const std::string& why, bool goodbye,
                            bool full) {
  auto it = conns_.find(conn);
  if (it == conns_.end() || it->second.closing) return;
  it->second.closing = true;
  it->second.close_reason = why;
  if (goodbye && it->second.opened) {
    wire::Envelope m;
    m.mutable_goodbye()->set_reason(why);
    m.mutable_goodbye()->set_full(full);
    Send(conn, std::move(m));
  }
  actions_.push_back(Action::Close(conn, why));
}

void PeerManager::OnClosed(ConnId conn, const std::string& reason) {
  auto it = conns_.find(conn);
  if (it == conns_.end()) return;
  Conn c = std::move(it->second);
  conns_.erase(it);
  const std::string why = c.closing ? c.close_reason : reason;
  if (c.subscriber) {
    subscribers_.erase(c.key);
    actions_.push_back(Action::PeerGone(c.key, why));
    return;
  }
  Entry* e = Find(c.key);
  if (e == nullptr || e->conn != c.id) return;
  e->conn = 0;
  if (e->state == PeerState::kActive) {
    actions_.push_back(Action::PeerGone(e->node_id, why));
    // A full peer is tried again with backoff, like a failed dial, not at once;
    // while this node has other peers, not on a timer at all (seed or not): it
    // waits as a spare, dialled when a slot frees. At 100 nodes told of one seed,
    // the seed at its limit was redialled by every other node, over and over.
    e->attempts = c.full ? e->attempts + 1 : 0;
    ToLifesupport(c.key, why);
    if (Entry* left = Find(c.key);
        c.full && Connections() > 0 && left && left->state == PeerState::kLifesupport) {
      left->spare = true;
      SetState(*left, c.key, PeerState::kLifesupport,
               "spare: " + why + " (at its peer limit; dialled again when a slot frees)");
    }
    return FillSlots();
  }
  if (c.outgoing) {
    ++e->attempts;
    ToLifesupport(c.key, "attempt " + std::to_string(e->attempts) + " to " + c.address +
                             " failed: " + why);
  } else {
    ToLifesupport(c.key, why);
  }
  FillSlots();
}

// ---------------------------------------------------------------- messages

void PeerManager::OnMessage(ConnId conn, wire::Envelope&& m) {
  auto it = conns_.find(conn);
  if (it == conns_.end() || it->second.closing || !it->second.opened) return;
  Conn& c = it->second;
  c.last_rx_mono = clock_->MonotonicMicros();
  c.ping_outstanding = false;
  if (m.has_hello()) return OnHello(c, m.hello());
  if (!c.hello_done) {
    return CloseConn(c.id, "protocol error: " + MessageName(m) + " before hello", true);
  }
  switch (m.msg_case()) {
    case wire::Envelope::kPing:
    case wire::Envelope::kPong:
    case wire::Envelope::kGoodbye:
    case wire::Envelope::kPeerExchange:
    case wire::Envelope::kHoldings:
      return OnDiscoveryMessage(c, m);
    case wire::Envelope::MSG_NOT_SET:
      return;  // a message type from a newer peer: ignored once hellos are done
    default:
      break;
  }
  if (c.subscriber) return actions_.push_back(Action::Deliver(c.key, std::move(m)));
  Entry* e = Find(c.key);
  if (e == nullptr || e->conn != c.id || e->state != PeerState::kActive) return;
  actions_.push_back(Action::Deliver(e->node_id, std::move(m)));
}

void PeerManager::OnDiscoveryMessage(Conn& c, wire::Envelope& m) {
  if (m.has_ping()) {
    wire::Envelope pong;
    pong.mutable_pong()->set_nonce(m.ping().nonce());
    return Send(c.id, std::move(pong));
  }
  if (m.has_pong()) return OnPong(c, m.pong().nonce());
  if (m.has_goodbye()) {
    c.full = m.goodbye().full();
    return CloseConn(c.id, "peer said goodbye: " + m.goodbye().reason(), false);
  }
  if (m.has_peer_exchange() && options_.peer_exchange) {
    Entry* e = Find(c.key);
    if (e != nullptr && e->conn == c.id) OnPeerExchange(c.key, *e, m.peer_exchange());
  }
  if (m.has_holdings()) {
    if (Status s = CheckHoldings(m.holdings()); !s.ok()) {
      return CloseConn(c.id, "protocol error: " + s.message(), true);
    }
    Entry* e = Find(c.key);
    if (e == nullptr || e->conn != c.id || c.subscriber) return;
    e->holdings = std::move(*m.mutable_holdings());
    e->holdings_direct = true;
    // Passed on to our other peers with the next forward (ForwardHoldings): one
    // exchange per holdings_forward_ms for all that changed, however many come.
    if (options_.peer_exchange) {
      if (holdings_dirty_.empty()) {
        next_holdings_forward_ =
            std::max(next_holdings_forward_, clock_->MonotonicMicros());
      }
      holdings_dirty_.insert(c.key);
    }
  }
}

// One PeerExchange of the peers whose holdings changed (each with its address
// and holdings) to every active peer but each one itself.
void PeerManager::ForwardHoldings(int64_t now) {
  next_holdings_forward_ = now + options_.holdings_forward_ms * 1000;
  std::vector<std::string> changed(holdings_dirty_.begin(), holdings_dirty_.end());
  holdings_dirty_.clear();
  for (const auto& [key, to] : entries_) {
    if (to.state != PeerState::kActive) continue;
    wire::Envelope m;
    size_t bytes = 0;
    for (const auto& id : changed) {
      const Entry* e = Find(id);
      if (id == key || e == nullptr || e->state != PeerState::kActive ||
          e->addresses.empty() || !e->holdings || !e->holdings_direct) {
        continue;
      }
      const size_t n = e->holdings->bloom().size();
      if (n > options_.holdings_pass_on_bytes ||
          bytes + n > options_.holdings_exchange_bytes) {
        continue;
      }
      wire::PeerExchange::Peer* p = m.mutable_peer_exchange()->add_peers();
      p->set_node_id(e->node_id);
      p->set_address(e->addresses.front());
      *p->mutable_holdings() = *e->holdings;
      bytes += n;
    }
    if (m.peer_exchange().peers_size() > 0) Send(to.conn, std::move(m));
  }
}

// What `from` tells us of other peers is a claim: each exchange costs one of its
// tokens (at most exchange_burst, exchange_per_s back), and it may have at most
// max_unverified_per_source entries in our table that never completed a hello.
void PeerManager::OnPeerExchange(const std::string& from, Entry& source,
                                 const wire::PeerExchange& px) {
  const int64_t now = clock_->MonotonicMicros();
  const double burst = options_.exchange_burst;
  if (source.exchange_tokens < 0) {
    source.exchange_tokens = burst;
  } else {
    source.exchange_tokens = std::min(
        burst, source.exchange_tokens + static_cast<double>(now - source.exchange_mono) *
                                            options_.exchange_per_s / 1e6);
  }
  source.exchange_mono = now;
  if (source.exchange_tokens < 1) {
    if (!source.exchange_limited) {  // once per burst, not once per message
      source.exchange_limited = true;
      actions_.push_back(Action::Log(
          from, "peer exchanges beyond " + std::to_string(options_.exchange_per_s) +
                    "/s (burst " +
                    std::to_string(static_cast<int>(options_.exchange_burst)) +
                    ") ignored"));
    }
    return;
  }
  source.exchange_limited = false;
  source.exchange_tokens -= 1;
  size_t unverified = 0;
  for (const auto& [key, e] : entries_) {
    if (!e.verified && e.learned_from == from) ++unverified;
  }
  int n = std::min(px.peers_size(), static_cast<int>(options_.max_exchange_entries));
  int refused = 0;
  for (int i = 0; i < n; ++i) {
    const wire::PeerExchange::Peer& p = px.peers(i);
    if (!IsPlausibleNodeId(p.node_id())) continue;
    const bool fresh = Find(p.node_id()) == nullptr && KeyOfAddress(p.address()).empty();
    if (fresh && unverified >= options_.max_unverified_per_source) {
      ++refused;
      continue;
    }
    const size_t before = entries_.size();
    Learn(p.node_id(), p.address(), false, "peer exchange from " + from, from);
    if (entries_.size() > before) ++unverified;
    // What it stores, as `from` heard it: kept unless the node told us itself.
    Entry* learned = Find(p.node_id());
    if (p.has_holdings() && learned != nullptr && !learned->holdings_direct &&
        p.holdings().bloom().size() <= options_.holdings_pass_on_bytes &&
        CheckHoldings(p.holdings()).ok()) {
      learned->holdings = p.holdings();
    }
  }
  if (refused > 0) {
    actions_.push_back(
        Action::Log(from, "peer exchange: " + std::to_string(refused) + " of " +
                              std::to_string(n) + " new peers ignored (at most " +
                              std::to_string(options_.max_unverified_per_source) +
                              " from one peer that have not yet answered a hello)"));
  }
}

void PeerManager::SendExchange(ConnId conn, const std::string& exclude) {
  wire::Envelope m;
  wire::PeerExchange* px = m.mutable_peer_exchange();
  size_t holdings_bytes = 0;
  for (const auto& [key, e] : entries_) {
    if (px->peers_size() >= static_cast<int>(options_.max_exchange_entries)) break;
    if (e.state != PeerState::kActive || key == exclude || e.addresses.empty()) continue;
    wire::PeerExchange::Peer* p = px->add_peers();
    p->set_node_id(e.node_id);
    p->set_address(e.addresses.front());
    // Passed on only what it told us itself, within the bounds.
    if (e.holdings && e.holdings_direct) {
      const size_t n = e.holdings->bloom().size();
      if (n <= options_.holdings_pass_on_bytes &&
          holdings_bytes + n <= options_.holdings_exchange_bytes) {
        *p->mutable_holdings() = *e.holdings;
        holdings_bytes += n;
      }
    }
  }
  if (px->peers_size() > 0) Send(conn, std::move(m));
}

void PeerManager::SetHoldings(wire::Holdings own) {
  own_holdings_ = std::move(own);
  wire::Envelope m;
  *m.mutable_holdings() = *own_holdings_;
  for (const auto& [key, e] : entries_) {
    if (e.state == PeerState::kActive) Send(e.conn, m);
  }
}

void PeerManager::SetWanted(std::vector<std::string> devices) {
  if (devices != wanted_) {
    std::erase_if(holder_tried_, [&](const auto& dn) {
      return std::find(devices.begin(), devices.end(), dn.first) == devices.end();
    });
    wanted_ = std::move(devices);
  }
  DialHolders();
}

// For each wanted device: a node that may hold it (its holdings say so), not
// tried for it yet, dialled while fewer than max_holder_peers holders are
// connected or being dialled and the node is below max_active.
void PeerManager::DialHolders() {
  if (wanted_.empty()) return;
  // Holders count while connected and the device they were dialled for is
  // still wanted: one that did not hold it, or whose device came, frees its place.
  size_t holders = 0;
  for (const auto& [key, e] : entries_) {
    holders += !e.holder_for.empty() &&
               std::find(wanted_.begin(), wanted_.end(), e.holder_for) != wanted_.end() &&
               (e.state == PeerState::kActive || e.state == PeerState::kOutgoing ||
                e.state == PeerState::kIncoming);
  }
  for (const auto& device : wanted_) {
    if (holders >= options_.max_holder_peers) return;
    if (options_.max_active > 0 && Connections() >= options_.max_active) return;
    std::vector<std::string> candidates;
    bool connected = false;
    for (const auto& [key, e] : entries_) {
      if (!e.holdings || !MayHold(*e.holdings, device)) continue;
      if (e.state == PeerState::kOutgoing || e.state == PeerState::kIncoming) {
        connected = true;  // on its way: its catalogue will tell
        holder_tried_.insert({device, key});
        continue;
      }
      if (e.state == PeerState::kActive) {
        // Its catalogue tells; still wanted a call later, it was a false "maybe".
        if (holder_tried_.insert({device, key}).second) connected = true;
        continue;
      }
      if (e.state == PeerState::kLifesupport && !e.addresses.empty() &&
          holder_tried_.count({device, key}) == 0) {
        candidates.push_back(key);
      }
    }
    if (connected || candidates.empty()) continue;
    const std::string key = candidates[rng_->Uniform(candidates.size())];
    holder_tried_.insert({device, key});
    Entry* e = Find(key);
    e->holder_for = device;
    e->spare = false;
    ++holders;
    const std::string why = "its holdings say it may hold " + device +
                            ", which this node follows and no active peer offers";
    actions_.push_back(Action::Log(key, "dialled: " + why));
    Dial(key, why);
  }
}

void PeerManager::AnnounceToOthers(const std::string& id) {
  Entry* e = Find(id);
  if (e == nullptr || e->addresses.empty()) return;
  wire::Envelope m;
  wire::PeerExchange::Peer* p = m.mutable_peer_exchange()->add_peers();
  p->set_node_id(id);
  p->set_address(e->addresses.front());
  for (const auto& [key, other] : entries_) {
    if (key != id && other.state == PeerState::kActive) Send(other.conn, m);
  }
}

void PeerManager::Heartbeat(Conn& c, int64_t now) {
  if (!c.opened || c.closing) return;
  const int64_t dead_us = options_.dead_interval_ms * 1000;
  if (!c.hello_done) {
    const int64_t hello_us = options_.hello_timeout_ms * 1000;
    if (now - c.opened_mono >= hello_us)
      CloseConn(c.id, "no hello within " + Ms(hello_us), true);
    return;
  }
  const int64_t silent = now - c.last_rx_mono;
  if (silent >= dead_us) {
    return CloseConn(c.id, "dead: nothing received for " + Ms(silent), true);
  }
  if (!c.ping_outstanding && silent >= options_.ping_interval_ms * 1000) {
    c.ping_outstanding = true;
    return SendPing(c, now);
  }
  if (c.probe_nonce == 0 &&
      now - c.probe_sent_mono >= options_.rtt_probe_interval_ms * 1000) {
    SendPing(c, now);
  }
}

void PeerManager::SendPing(Conn& c, int64_t now) {
  uint64_t nonce = rng_->Next() | 1;  // never 0, which means "none timed"
  if (c.probe_nonce == 0) {
    c.probe_nonce = nonce;
    c.probe_sent_mono = now;
  }
  wire::Envelope ping;
  ping.mutable_ping()->set_nonce(nonce);
  Send(c.id, std::move(ping));
}

void PeerManager::OnPong(Conn& c, uint64_t nonce) {
  if (nonce == 0 || nonce != c.probe_nonce) return;
  c.probe_nonce = 0;
  const int64_t sample =
      std::max<int64_t>(1, clock_->MonotonicMicros() - c.probe_sent_mono);
  c.rtt_us = c.rtt_us == 0 ? sample : c.rtt_us + (sample - c.rtt_us) / 8;
  Entry* e = Find(c.key);
  if (e != nullptr && e->conn == c.id && e->state == PeerState::kActive) {
    actions_.push_back(Action::PeerRtt(e->node_id, c.rtt_us));
  }
}

}  // namespace cairn::discovery
