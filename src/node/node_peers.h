// PeerLayer: the node's peer side, wrapped for Node. It runs a
// discovery::Discovery: listening, seeds, DNS, peer exchange, heartbeats, and its
// peers in `cairn status`.
//
// Sync attaches to discovery() with set_listener (see Node::StartSync).
//
// Thread-safety: the loop thread only. Ownership: the loop, the Context and the
// LevelDB (peer history) must outlive it. REQUIRES before destruction: Start
// failed or was never called, or Stop's `done` has run.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "node/config.h"
#include "tls/context.h"
#include "wire/schema.h"

namespace leveldb {
class DB;
}
namespace cairn::discovery {
class Discovery;
}

namespace cairn::node {

class PeerLayer {
 public:
  // `max_connections`: peer connections open at once (see fd_budget.h).
  PeerLayer(uv_loop_t* loop, std::shared_ptr<const tls::Context> context,
            const DaemonConfig& config, size_t max_connections, leveldb::DB* db);
  ~PeerLayer();
  PeerLayer(const PeerLayer&) = delete;
  PeerLayer& operator=(const PeerLayer&) = delete;

  // Listens and starts finding peers. The error names the address.
  Status Start();
  void Stop(std::function<void()> done);

  // "HOST:PORT" actually bound (the port resolved when 0 was asked for).
  const std::string& listen_address() const { return listen_address_; }
  std::vector<wire::ControlPeer> Peers() const;
  // nullptr when built without src/discovery.
  discovery::Discovery* discovery();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string config_host_;
  int config_port_;
  std::string listen_address_;
};

}  // namespace cairn::node
