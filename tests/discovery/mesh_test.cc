// Discovery on loopback with real TLS, several nodes on one loop: a mesh from one
// seed each, a stopped node through lifesupport and back, a node seeded with its own
// address, and the hook for the layer above.
#include <gtest/gtest.h>

#include <set>

#include "discovery/mesh_fixture.h"
#include "testutil/status_matchers.h"

namespace cairn::discovery::testing {
namespace {

std::string Ids(const std::vector<std::string>& ids) {
  std::string out;
  for (const std::string& id : ids) out += id + " ";
  return out;
}

TEST_F(MeshTest, FiveNodesGivenOneSeedEachFormAFullMesh) {
  std::vector<std::string> ids = {"n0", "n1", "n2", "n3", "n4"};
  StartNode("n0");
  for (size_t i = 1; i < ids.size(); ++i) StartNode(ids[i], {AddressOf(ids[i - 1])});
  ASSERT_TRUE(RunUntil([&] { return FullMesh(ids); }, 15'000)) << Describe("n0") << "\n"
                                                               << Describe("n4");
  // Every node's listener saw every other one become active.
  for (const std::string& id : ids) {
    std::set<std::string> seen(Node(id).listener.active.begin(),
                               Node(id).listener.active.end());
    EXPECT_EQ(seen.size(), 4u) << id;
  }
}

// The bounded mesh (issue 15): 20 nodes, each told only of n0, dial at most 4
// peers and keep at most 8 active. n0 is full long before the last ones come and
// sends them elsewhere with a peer exchange; the mesh ends connected, within
// the bounds, and far from full.
TEST_F(MeshTest, TwentyNodesWithATargetOfFourFormABoundedConnectedMesh) {
  DiscoveryConfig config = FastConfig();
  config.options.target_peers = 4;
  config.options.max_active = 8;
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back("n" + std::to_string(i));
  StartNode("n0", {}, config);
  for (size_t i = 1; i < ids.size(); ++i) StartNode(ids[i], {AddressOf("n0")}, config);
  auto active_of = [&](const std::string& id) {
    std::set<std::string> out;
    for (const auto& row : Node(id).discovery->core().Snapshot()) {
      if (row.state == PeerState::kActive) out.insert(row.node_id);
    }
    return out;
  };
  auto connected = [&] {
    std::set<std::string> seen = {"n0"};
    std::vector<std::string> todo = {"n0"};
    while (!todo.empty()) {
      const std::string id = todo.back();
      todo.pop_back();
      for (const std::string& p : active_of(id)) {
        if (seen.insert(p).second) todo.push_back(p);
      }
    }
    if (seen.size() != ids.size()) return false;
    for (const std::string& id : ids) {
      if (active_of(id).size() < 2) return false;  // no leaf hangs by one link
    }
    return true;
  };
  ASSERT_TRUE(RunUntil(connected, 30'000)) << Describe("n0") << "\n" << Describe("n19");
  size_t links = 0;
  for (const std::string& id : ids) {
    const size_t n = active_of(id).size();
    EXPECT_LE(n, 8u) << id << " is past max_active";
    links += n;
  }
  EXPECT_LT(links / 2, 20u * 19u / 2u / 2u) << "less than half a full mesh's links";
  EXPECT_FALSE(FullMesh(ids));
}

TEST_F(MeshTest, StoppedNodeGoesToLifesupportAndIsActiveAgainAfterRestart) {
  StartNode("a");
  StartNode("b", {AddressOf("a")});
  StartNode("c", {AddressOf("a")});
  ASSERT_TRUE(RunUntil(
      [&] {
        return FullMesh({"a", "b", "c"});
      },
      15'000))
      << Describe("a");
  StopNode("c");
  ASSERT_TRUE(RunUntil([&] {
    return StateAt("a", "c") == PeerState::kLifesupport ||
           StateAt("a", "c") == PeerState::kOutgoing;
  })) << Describe("a");
  ASSERT_TRUE(RunUntil([&] { return !Node("b").listener.gone.empty(); }));
  EXPECT_EQ(Node("b").listener.gone.back().first, "c");
  // Restarted without seeds: it dials its peers from its own peer history.
  StartNode("c");
  ASSERT_TRUE(RunUntil(
      [&] {
        return FullMesh({"a", "b", "c"});
      },
      15'000))
      << Describe("a") << "\n"
      << Describe("c");
  bool restored = false;
  for (const Transition& t : Node("c").discovery->core().transitions()) {
    restored |= t.reason.find("reconnect after restart") != std::string::npos;
  }
  EXPECT_TRUE(restored);
}

TEST_F(MeshTest, NodeSeededWithItsOwnAddressPutsItInPurgatory) {
  DiscoveryConfig config = FastConfig();
  config.listen_port = FreePort();
  const std::string self = "127.0.0.1:" + std::to_string(config.listen_port);
  StartNode("solo", {self}, config);
  auto in_purgatory = [&] {
    for (const PeerStatus& s : Node("solo").discovery->Snapshot()) {
      if (s.state == PeerState::kPurgatory && s.addresses[0] == self) return true;
    }
    return false;
  };
  ASSERT_TRUE(RunUntil(in_purgatory)) << Describe("solo");
  EXPECT_TRUE(Node("solo").discovery->ActivePeers().empty());
  EXPECT_TRUE(Node("solo").listener.active.empty());
}

TEST_F(MeshTest, TheLayerAboveSendsAndReceivesOnActivePeers) {
  StartNode("a");
  StartNode("b", {AddressOf("a")});
  ASSERT_TRUE(RunUntil([&] { return FullMesh({"a", "b"}); }));
  wire::Envelope sub;
  sub.mutable_subscribe()->set_device("dev1");
  ASSERT_OK(Node("b").discovery->Send("a", sub));
  ASSERT_TRUE(RunUntil([&] { return !Node("a").listener.messages.empty(); }));
  EXPECT_EQ(Node("a").listener.messages[0].first, "b");
  EXPECT_EQ(Node("a").listener.messages[0].second.subscribe().device(), "dev1");
  EXPECT_EQ(Node("b").discovery->Send("nobody", sub).code(),
            Status::Code::kFailedPrecondition);
  EXPECT_FALSE(Node("b").discovery->AboveHighWater("a"));
  // Heartbeats keep an idle pair active well past the dead interval.
  uint64_t attempts = Node("b").discovery->connect_attempts();
  RunUntil([] { return false; }, 1000);  // the loop runs 1 s: no condition to meet
  EXPECT_TRUE(FullMesh({"a", "b"})) << Describe("a");
  EXPECT_EQ(Node("b").discovery->connect_attempts(), attempts);
  EXPECT_EQ(Ids(Node("a").listener.active), "b ");
}

}  // namespace
}  // namespace cairn::discovery::testing
