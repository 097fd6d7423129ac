// Test vocabulary for discovery on a real loop: nodes (a Discovery with its own TLS
// Endpoint, a certificate from the test CA and a LevelDB in a temp dir) on one libuv
// loop, started, stopped and restarted by name; a listener that records what the
// layer above would see; and conditions to run the loop until (with a watchdog).
#pragma once

#include <leveldb/db.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "discovery/discovery_uv.h"
#include "discovery/peer_store.h"
#include "testutil/pki.h"
#include "tls/loop_fixture.h"

namespace cairn::discovery::testing {

// What the sync layer would be told.
struct RecordingListener : PeerListener {
  void OnPeerActive(const std::string& node_id) override { active.push_back(node_id); }
  void OnPeerMessage(const std::string& node_id, wire::Envelope&& m) override {
    messages.emplace_back(node_id, std::move(m));
  }
  void OnPeerGone(const std::string& node_id, const std::string& reason) override {
    gone.emplace_back(node_id, reason);
  }
  std::vector<std::string> active;
  std::vector<std::pair<std::string, wire::Envelope>> messages;
  std::vector<std::pair<std::string, std::string>> gone;
};

struct TestNode {
  std::string id;
  int port = 0;
  std::unique_ptr<leveldb::DB> db;
  std::unique_ptr<LevelDbPeerStore> store;
  std::unique_ptr<Discovery> discovery;
  RecordingListener listener;
};

class MeshTest : public tls::testing::LoopTest {
 protected:
  void TearDown() override;

  // Intervals for tests: ping 100 ms, dead 300 ms, backoff 50..400 ms.
  static DiscoveryConfig FastConfig();
  // Starts (or restarts, reusing its LevelDB and port) node `id`.
  TestNode& StartNode(const std::string& id, std::vector<std::string> seeds = {},
                      DiscoveryConfig config = FastConfig());
  void StopNode(const std::string& id);
  TestNode& Node(const std::string& id) { return *nodes_.at(id); }
  std::string AddressOf(const std::string& id) {
    return "127.0.0.1:" + std::to_string(Node(id).port);
  }
  // A TCP port on 127.0.0.1 that was free a moment ago.
  int FreePort();

  // Every running node in `ids` has every other one active.
  bool FullMesh(const std::vector<std::string>& ids);
  // The state of `peer` in `at`'s table (kDeleted when absent).
  PeerState StateAt(const std::string& at, const std::string& peer);
  std::string Describe(const std::string& id);

  testutil::TempDir dir_;
  std::map<std::string, std::unique_ptr<TestNode>> nodes_;
};

}  // namespace cairn::discovery::testing
