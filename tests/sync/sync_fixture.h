// Test vocabulary for sync: whole nodes (a Journal that is the source of the
// device named after the node, a Discovery on its own TLS endpoint, a SyncNode)
// on one libuv loop, started, stopped and restarted by name, with short timers;
// appends; and the convergence checker: after quiescence every node has, for
// every device, the same last, head hash and KV view.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "discovery/discovery_uv.h"
#include "journal/journal.h"
#include "node_harness.h"
#include "sync/sync_uv.h"
#include "testutil/status_matchers.h"
#include "tls/loop_fixture.h"

namespace cairn::sync::testing {

using SyncTestNode = HarnessNode;

struct NodeConfig {
  std::vector<std::string> seeds;  // node ids, dialled at their ports
  bool peer_exchange = true;
  SyncOptions sync;
};

inline NodeConfig Seeded(std::vector<std::string> seeds, bool peer_exchange = true) {
  NodeConfig c;
  c.seeds = std::move(seeds);
  c.peer_exchange = peer_exchange;
  return c;
}

class SyncTest : public tls::testing::LoopTest {
 protected:
  SyncTest();
  void TearDown() override;

  SyncTestNode& Start(const std::string& id, NodeConfig config = {});
  void Stop(const std::string& id);
  SyncTestNode& Node(const std::string& id) { return *nodes_.at(id); }
  journal::Journal& J(const std::string& id) { return *Node(id).journal; }

  // Appends `n` events to the device of node `id` (its own), in batches.
  void Append(const std::string& id, int n, const std::string& type = "note");
  uint64_t Last(const std::string& at, const std::string& device);

  // Every running node holds every device of `devices` as the first node does.
  bool Converged(const std::vector<std::string>& nodes,
                 const std::vector<std::string>& devices);
  // Runs the loop until Converged, with a watchdog.
  bool RunUntilConverged(const std::vector<std::string>& nodes,
                         const std::vector<std::string>& devices,
                         uint64_t timeout_ms = 30'000);

  std::shared_ptr<const journal::CertAuthority> ca_;
  testutil::TempDir dir_;
  std::map<std::string, std::unique_ptr<SyncTestNode>> nodes_;
};

}  // namespace cairn::sync::testing
