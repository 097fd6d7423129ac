// Peer sessions: what sync needs of the connections to its peers, whoever finds
// them. A transport (discovery's bounded mesh, discovery::Discovery; later the
// DHT) implements PeerSessions and calls a SessionListener (sync's SyncNode) as
// peers come and go; sync knows nothing of how a peer was found, dialled or
// kept. The CLI's reader (`cairn tail --peer`) needs neither: it drives the
// sans-I/O Subscriber (subscriber.h) over its own connection.
//
// Thread-safety: every call on one loop thread, both ways. A listener call may
// call the PeerSessions back; it must not destroy it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "wire/schema.h"

namespace cairn::sync {

// What a transport tells sync.
class SessionListener {
 public:
  virtual ~SessionListener() = default;
  // Hellos exchanged and verified; Send(node_id, ...) works from now on.
  virtual void OnPeerActive(const std::string& node_id) = 0;
  // A message for sync (not the transport's own: Hello, Ping, PeerExchange, ...)
  // from an active peer, in order.
  virtual void OnPeerMessage(const std::string& node_id, wire::Envelope&& message) = 0;
  // A subscriber (Hello.subscriber: `cairn tail --peer`) is active under `name`:
  // it may subscribe, it never serves. Its messages and its end come as
  // OnPeerMessage(name) and OnPeerGone(name); Send(name) works. `read_scope`: the
  // device globs its certificate lets it read (empty: all).
  virtual void OnSubscriberActive(const std::string& /*name*/,
                                  const std::vector<std::string>& /*read_scope*/) {}
  // The peer's write queue fell back to its low-water mark (resume sending).
  virtual void OnPeerDrained(const std::string& /*node_id*/) {}
  // A new smoothed round-trip time (microseconds) of an active peer.
  virtual void OnPeerRtt(const std::string& /*node_id*/, int64_t /*rtt_us*/) {}
  // The session is gone (dead, closed, replaced); Send fails until the next
  // OnPeerActive. A replaced connection gives OnPeerGone then OnPeerActive.
  virtual void OnPeerGone(const std::string& node_id, const std::string& reason) = 0;
};

// What sync asks of a transport.
class PeerSessions {
 public:
  virtual ~PeerSessions() = default;
  // Queues `message` to an active peer. FailedPrecondition when it is not active;
  // ResourceExhausted from the connection's limits.
  virtual Status Send(const std::string& peer, const wire::Envelope& message) = 0;
  // Whether the peer's write queue is above its high-water mark (hold back
  // catalogues and stream data until OnPeerDrained).
  virtual bool AboveHighWater(const std::string& peer) const = 0;
  // Ends the session with a peer that broke the protocol, with the reason.
  virtual void Disconnect(const std::string& peer, const std::string& reason) = 0;
  // The devices this node stores, and those it follows that no active peer
  // offers: a transport that finds holders (discovery's bloom filters, a DHT's
  // holder records) announces the first and dials for the second.
  virtual void SetStored(const std::vector<std::string>& /*devices*/) {}
  virtual void SetWanted(std::vector<std::string> /*devices*/) {}
};

}  // namespace cairn::sync
