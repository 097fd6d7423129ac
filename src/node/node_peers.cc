#include "node/node_peers.h"

#include <algorithm>
#include <utility>

#include "base/clock.h"
#include "discovery/address.h"
#include "discovery/discovery_uv.h"
#include "discovery/peer_store.h"
#include "node/log.h"
#include "tls/endpoint_uv.h"

namespace cairn::node {

using discovery::JoinHostPort;

struct PeerLayer::Impl {
  Impl(uv_loop_t* loop, std::shared_ptr<const tls::Context> context,
       const DaemonConfig& c, size_t max_connections, leveldb::DB* db)
      : store(db),
        discovery(loop, std::move(context), Config(c, max_connections), &store,
                  SystemClock()) {}

  static discovery::DiscoveryConfig Config(const DaemonConfig& c,
                                           size_t max_connections) {
    discovery::DiscoveryConfig d;
    d.tls.max_connections = max_connections;
    d.listen_host = c.listen_host;
    d.listen_port = c.listen_port;
    d.advertise = c.advertise;
    d.seeds = c.peers;
    d.dns_names = c.dns_seeds;
    d.dns_server = c.dns_server;
    d.options.peer_exchange = c.peer_exchange;
    d.options.target_peers = c.target_peers;
    d.options.max_active = c.max_peers;
    d.options.dead_interval_ms = c.dead_interval_ms;
    d.options.hello_timeout_ms =
        std::min<int64_t>(d.options.hello_timeout_ms, c.dead_interval_ms);
    d.options.ping_interval_ms =
        std::min(d.options.ping_interval_ms, c.dead_interval_ms / 3);
    d.log = [](const std::string& line) { CAIRN_LOG(kWarn) << "discovery: " << line; };
    return d;
  }

  discovery::LevelDbPeerStore store;
  discovery::Discovery discovery;
  bool started = false;
};

Status PeerLayer::Start() {
  impl_->started = true;
  auto port = impl_->discovery.Start();
  if (!port.ok()) return port.status();
  listen_address_ = JoinHostPort(config_host_, *port);
  return Status::Ok();
}

void PeerLayer::Stop(std::function<void()> done) {
  if (!impl_->started) return done();
  impl_->discovery.Stop(std::move(done));
}

std::vector<wire::ControlPeer> PeerLayer::Peers() const {
  std::vector<wire::ControlPeer> out;
  int64_t now_us = SystemClock()->NowMicros();
  for (const auto& p : impl_->discovery.Snapshot()) {
    wire::ControlPeer w;
    w.set_id(p.node_id);
    w.set_address(p.addresses.empty() ? "" : p.addresses.front());
    w.set_state(discovery::StateName(p.state));
    w.set_reason(p.reason);
    w.set_since_ms(p.since_us > 0 ? (now_us - p.since_us) / 1000 : 0);
    w.set_rtt_us(p.rtt_us);
    out.push_back(std::move(w));
  }
  return out;
}

discovery::Discovery* PeerLayer::discovery() { return &impl_->discovery; }

PeerLayer::PeerLayer(uv_loop_t* loop, std::shared_ptr<const tls::Context> context,
                     const DaemonConfig& config, size_t max_connections, leveldb::DB* db)
    : impl_(
          std::make_unique<Impl>(loop, std::move(context), config, max_connections, db)),
      config_host_(config.listen_host),
      config_port_(config.listen_port) {}

PeerLayer::~PeerLayer() = default;

}  // namespace cairn::node
