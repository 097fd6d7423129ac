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
