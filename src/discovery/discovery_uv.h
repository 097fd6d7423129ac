// Discovery: a node's peer layer on one libuv loop. It owns the node's TLS Endpoint
// (listening and dialling), the PeerManager core, one uv_timer_t armed from the
// core's NextDeadline(), and a DnsResolver for DNS seeds; it performs the core's
// actions and feeds every event back. Peer history goes to a PeerStore.
//
// The layer above (sync) sees peers only through sync's session interface
// (sync/session.h), which this class implements:
//   - a listener (sync::SessionListener), told when a peer becomes active, for
//     each non-discovery message (Catalogue, Subscribe, Events, ...) it sends,
//     when its write queue drains, and when it goes (with the reason);
//   - Send(node_id, envelope) to answer on the peer's active connection,
//     AboveHighWater(node_id) for back-pressure, Disconnect, and SetStored /
//     SetWanted for finding holders (holdings.h).
// Discovery messages (Hello, Ping, Pong, Goodbye, PeerExchange) never reach the
// listener; any other message before the hello exchange closes the connection.
//
//   Discovery d(loop, context, config, &store, SystemClock());
//   d.set_listener(&sync);
//   Result<int> port = d.Start();
//   ...
//   d.Stop([&] { /* every handle closed: d may be destroyed */ });
//
// Thread-safety: the loop thread only. Listener calls run on it and may call Send,
// AboveHighWater and the queries; they must not destroy the Discovery.
// Ownership: the loop, the store (if any) and the clock must outlive the Discovery.
// REQUIRES before destruction: Start was never called, or Stop's `done` has run
// (after a failed Start too).
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/result.h"
#include "base/rng.h"
#include "discovery/dns_uv.h"
#include "discovery/options.h"
#include "discovery/peer_manager.h"
#include "discovery/peer_store.h"
#include "sync/session.h"
#include "tls/endpoint_uv.h"

namespace cairn::discovery {

// The hook for the layer above (sync/session.h; subscribers are named by
// SubscriberName). Every method runs on the loop thread.
using PeerListener = sync::SessionListener;

struct DiscoveryConfig {
  std::string listen_host = "0.0.0.0";
  int listen_port = kDefaultPort;  // 0: an ephemeral port
  // What peers are told to dial; empty: listen_host:port unless it is a wildcard.
  std::string advertise;
  std::vector<std::string> seeds;      // "IP:PORT", pinned
  std::vector<std::string> dns_names;  // DNS seed names
  std::string dns_server;              // "IP:PORT"; empty: the system resolver config
  int dns_default_port = kDefaultPort;
  Options options;
  tls::Options tls;
  uint64_t rng_seed = 0;  // 0: drawn from std::random_device
  // Where failures are reported (DNS, store); default: stderr.
  std::function<void(const std::string&)> log;
};

class Discovery final : public sync::PeerSessions {
 public:
  // Closes every open connection (peers and subscribers) whose certificate the
  // TLS context now finds revoked (after Context::LoadCrl), logging each; returns
  // how many.
  size_t DropRevoked();
  uint64_t revoked_disconnects() const { return revoked_disconnects_; }
  // Peer messages sent (queued) and received since start, and their bytes.
  struct Traffic {
    uint64_t messages_sent = 0;
    uint64_t bytes_sent = 0;
    uint64_t messages_received = 0;
    uint64_t bytes_received = 0;
  };
  const Traffic& traffic() const { return traffic_; }
  Discovery(uv_loop_t* loop, std::shared_ptr<const tls::Context> context,
            DiscoveryConfig config, PeerStore* store, Clock* clock);
  ~Discovery() override;
  Discovery(const Discovery&) = delete;
  Discovery& operator=(const Discovery&) = delete;

  void set_listener(PeerListener* listener) { listener_ = listener; }

  // Listens, restores peer history, dials seeds, starts DNS; returns the bound port.
  // REQUIRES: called once.
  Result<int> Start();
  // Closes every connection and handle; `done` runs on the loop afterwards.
  void Stop(std::function<void()> done);

  // Queues `message` on the active connection of `node_id`. FailedPrecondition when
  // the peer is not active; ResourceExhausted from the connection's limits.
  Status Send(const std::string& node_id, const wire::Envelope& message) override;
  bool AboveHighWater(const std::string& node_id) const override;
  // Closes the active connection of `node_id` (a protocol error found by the layer
  // above); the peer goes to lifesupport with `reason` and is retried with backoff.
  void Disconnect(const std::string& node_id, const std::string& reason) override;
  // The devices stored here, as the bloom filter peers get (MakeHoldings), and
  // those wanted (PeerManager::SetHoldings / SetWanted, holdings.h). Loop thread.
  void SetStored(const std::vector<std::string>& devices) override;
  void SetHoldings(wire::Holdings own);
  void SetWanted(std::vector<std::string> devices) override;

  std::vector<PeerStatus> Snapshot() const;
  std::vector<std::string> ActivePeers() const;
  const std::string& node_id() const { return context_->node_id(); }
  const std::string& advertise() const { return advertise_; }
  uint64_t connect_attempts() const;
  // Peers in the saved history at Start that once completed a hello with us.
  size_t remembered_peers() const { return remembered_peers_; }
  // REQUIRES: Start succeeded.
  const PeerManager& core() const { return *core_; }

 private:
  tls::ConnectionCallbacks Callbacks();
  void Pump();
  void Perform(Action& a);
  void PerformConnect(const Action& a);
  void PerformResolve(const std::string& name);
  void PerformStore(const Action& a);
  void ArmTimer();
  void Log(const std::string& line);
  tls::Connection* ConnectionOf(const std::string& node_id) const;
  void MaybeStopped();

  uv_loop_t* loop_;
  std::shared_ptr<const tls::Context> context_;
  DiscoveryConfig config_;
  PeerStore* store_;
  Clock* clock_;
  Rng rng_;
  tls::Endpoint endpoint_;
  std::unique_ptr<PeerManager> core_;
  std::unique_ptr<DnsResolver> dns_;
  PeerListener* listener_ = nullptr;
  std::string advertise_;
  size_t remembered_peers_ = 0;
  uv_timer_t timer_;
  bool started_ = false;
  bool stopping_ = false;
  bool pumping_ = false;
  int stop_pending_ = 0;
  std::function<void()> stopped_;
  std::map<ConnId, tls::Connection*> conns_;
  std::map<const tls::Connection*, ConnId> ids_;
  // Connections refused at accept: logged at most once a second, with a count of
  // those not logged (a flood must not flood the log).
  uint64_t revoked_disconnects_ = 0;
  Traffic traffic_;
  void CountSent(const wire::Envelope& m);
  int64_t refused_logged_mono_ = 0;
  bool refused_logged_ = false;
  uint64_t refused_unlogged_ = 0;
};

}  // namespace cairn::discovery
