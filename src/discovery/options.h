// Options of the discovery layer: every interval and every limit of the peer table,
// with production defaults. Tests shorten the intervals (ping 100 ms, dead 300 ms,
// backoff 50..400 ms) so that a whole life cycle runs in a second.
//
// Thread-safety: a plain value.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire/protocol.h"

namespace cairn::discovery {

// The peer protocol version (wire/protocol.h).
inline constexpr uint32_t kProtocolVersion = wire::kProtocolVersion;
inline constexpr uint32_t kMinProtocolVersion = wire::kMinProtocolVersion;
// The port a DNS seed's A/AAAA addresses are dialled on when it has no SRV record.
inline constexpr int kDefaultPort = 7411;

struct Options {
  // Heartbeats: a ping once an active connection has received nothing for
  // ping_interval_ms; the peer goes to lifesupport after dead_interval_ms of silence.
  // A connection that has not completed the hello exchange within hello_timeout_ms
  // of opening (TLS done) is closed.
  int64_t ping_interval_ms = 10'000;
  int64_t dead_interval_ms = 30'000;
  int64_t hello_timeout_ms = 5'000;
  // Round-trip time: a ping goes out when a peer becomes active and then at least
  // every rtt_probe_interval_ms, busy or not; the smoothed answer times (as TCP's
  // SRTT, 1/8 per sample) rank otherwise equal peers in sync planning. Both ends
  // probe, so an idle connection carries a ping and a pong each way per interval:
  // at 5 s, the probes were most of what an idle mesh of 100 nodes did.
  int64_t rtt_probe_interval_ms = 15'000;
  // Lifesupport: reconnect after backoff_initial_ms, doubling per failed attempt up
  // to backoff_max_ms, each delay drawn uniformly from [d/2, d] (jitter). After
  // max_attempts failed attempts an unpinned peer is deleted; a pinned one (a
  // configured seed) keeps retrying at backoff_max_ms.
  int64_t backoff_initial_ms = 1'000;
  int64_t backoff_max_ms = 300'000;
  uint32_t max_attempts = 10;
  // Purgatory: how long the losing address of a self or duplicate connection is
  // not dialled; the purgatory entry is deleted afterwards.
  int64_t purgatory_ms = 60'000;
  // Peer exchange: on every new active peer and then every exchange_interval_ms.
  bool peer_exchange = true;
  int64_t exchange_interval_ms = 60'000;
  // DNS seeds: re-resolved every dns_refresh_ms; after a failure, dns_retry_ms.
  int64_t dns_refresh_ms = 300'000;
  int64_t dns_retry_ms = 10'000;

  // The bounded mesh. A node dials known peers only while fewer than target_peers
  // are active or being dialled (incoming ones count); the others wait as spares,
  // and a spare, drawn at random, replaces a peer that goes. Configured seeds are
  // dialled whatever the count. At most max_active peers are active at once: a
  // hello past it, on an accepted connection, is answered with a peer exchange
  // (where to go instead) and a goodbye marked full. 0: no bound (every known
  // peer is dialled, a full mesh).
  size_t target_peers = 8;
  size_t max_active = 64;

  // Limits.
  size_t max_peers = 256;               // entries in the table, purgatory excluded
  size_t max_subscribers = 64;          // subscriber connections (cairn tail --peer)
  size_t max_subscribers_per_cert = 8;  // of those, with one certificate
  // Accepted connections of one certificate that have not completed their hello:
  // more are closed at once (one certificate cannot hold many half-open
  // connections, each with a partial frame buffered).
  size_t max_pending_per_cert = 4;
  size_t max_addresses_per_peer = 4;  // addresses remembered for one node id
  size_t max_exchange_entries = 64;   // peers sent or read in one PeerExchange
  // Holdings passed on in one PeerExchange: each at most this big, and at most
  // holdings_exchange_bytes in all (the rest of the peers go without theirs).
  size_t holdings_pass_on_bytes = 16u << 10;
  size_t holdings_exchange_bytes = 128u << 10;
  // New holdings of peers are passed on to our other peers in one exchange at
  // most this often (whatever changed meanwhile goes together).
  int64_t holdings_forward_ms = 5'000;
  // Peers dialled because they may hold a device this node follows and no
  // active peer offers (PeerManager::SetWanted), beyond target_peers.
  size_t max_holder_peers = 4;
  // What one peer's exchanges may put in our table: at most this many entries
  // that never completed a hello at a time (more are ignored; a verified peer
  // evicts them when the table is full, and they are never saved), and at most
  // exchange_burst messages, refilled at exchange_per_s (more are ignored).
  size_t max_unverified_per_source = 8;
  double exchange_burst = 32;
  double exchange_per_s = 1;
  size_t max_purgatory = 256;     // purgatory entries (oldest dropped first)
  size_t max_dns_names = 16;      // DNS seed names
  size_t max_dns_addresses = 32;  // addresses taken from one resolution
  size_t max_transitions = 512;   // transition log kept for status and tests
};

}  // namespace cairn::discovery
