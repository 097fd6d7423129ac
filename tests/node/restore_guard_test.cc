// The restore guard against real processes: a source whose data directory was
// wiped (its key kept, as in a reinstall) while its peer is down must not issue
// seq 1 again. It refuses appends with a clear "unavailable" error (exit 75) and
// says why in status and log for as long as the peer stays away, with no time
// limit; it catches up from the peer once it is back, then continues the stream;
// only `cairn guard release` lets it start without the peer, and then the fork
// the peer finds travels back to the source's own status and log.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "node/cluster.h"

namespace cairn::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class RestoreGuardTest : public ClusterTest {
 protected:
  // b up, a (the source) with --peer b, five events at a replicated to b; then
  // both stopped and a's data directory wiped.
  void WipeSourceWhilePeerIsDown() {
    StartNode("b");
    StartNode("a", {"b"}, {"--new-device"});
    dev_ = DeviceOf("a");
    for (int i = 1; i <= 5; ++i) {
      ASSERT_EQ(Cli("a", {"append", dev_, "note", std::to_string(i)}).exit_code, 0);
    }
    ASSERT_TRUE(Eventually([&] { return Last("b", dev_) == 5; })) << Log("b");
    ASSERT_EQ(StopNode("b"), 0);
    ASSERT_EQ(StopNode("a"), 0);
    fs::remove_all(Data("a"));
  }

  std::string GuardOf(const std::string& node) {
    json s = Status(node);
    if (!s.is_object()) return "";
    for (const auto& d : s["devices"]) {
      if (d["device"] == dev_ && d["guard"].is_string()) return d["guard"];
    }
    return "";
  }

  std::string dev_;
};

TEST_F(RestoreGuardTest, AWipedSourceRefusesAppendsUntilItsPeerReportsItsHead) {
  WipeSourceWhilePeerIsDown();
  StartNode("a", {"b"});
  // Longer than the 5 s after which the guard used to give up: every append in
  // that time is refused, none is assigned a seq.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(7);
  int tries = 0;
  while (std::chrono::steady_clock::now() < until) {
    RunResult r = Cli("a", {"append", dev_, "note", "while-guarded"});
    ASSERT_EQ(r.exit_code, 75) << r.out << r.err;
    ASSERT_NE(r.err.find("unavailable: waiting for peers to report the head"),
              std::string::npos)
        << r.err;
    ++tries;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_GE(tries, 5);
  EXPECT_NE(GuardOf("a").find("heard 0 of the 1 needed"), std::string::npos)
      << Status("a").dump();
  EXPECT_NE(Cli("a", {"status"}).out.find("cairn guard release " + dev_),
            std::string::npos);
  EXPECT_NE(Log("a").find("restore guard"), std::string::npos) << Log("a");

  // b comes back: a catches its own stream up from b, then appends after it.
  StartNode("b");
  ASSERT_TRUE(Eventually([&] { return GuardOf("a").empty() && Last("a", dev_) == 5; }))
      << Status("a").dump() << Log("a");
  RunResult next = Cli("a", {"append", dev_, "note", "6"});
  ASSERT_EQ(next.exit_code, 0) << next.err;
  EXPECT_EQ(next.out, "6\n");
  ASSERT_TRUE(Eventually([&] { return Last("b", dev_) == 6; })) << Log("b");
  EXPECT_EQ(Status("b")["forks"], 0);
  EXPECT_EQ(Cli("b", {"verify", dev_}).exit_code, 0);
}

TEST_F(RestoreGuardTest, OnlyTheOperatorReleasesAStreamItCouldNotConfirm) {
  WipeSourceWhilePeerIsDown();
  StartNode("a", {"b"});
  EXPECT_EQ(Cli("a", {"append", dev_, "note", "x"}).exit_code, 75);
  RunResult other = Cli("a", {"guard", "release", "no-such-device"});
  EXPECT_EQ(other.exit_code, 1);
  RunResult release = Cli("a", {"guard", "release", dev_});
  ASSERT_EQ(release.exit_code, 0) << release.err;
  EXPECT_EQ(GuardOf("a"), "");
  // The operator chose: a starts over at seq 1, and b, holding the old 1..5,
  // sees a fork when it meets this history.
  for (int i = 1; i <= 7; ++i) {
    ASSERT_EQ(Cli("a", {"append", dev_, "note", "new-" + std::to_string(i)}).exit_code,
              0);
  }
  EXPECT_EQ(Last("a", dev_), 7u);
  StartNode("b");
  ASSERT_TRUE(Eventually([&] { return Status("b")["forks"] == 1; })) << Log("b");
  EXPECT_EQ(Last("b", dev_), 5u);  // b kept its copy
  // The proof travels back: a's own status and log say its device forked, and where.
  ASSERT_TRUE(Eventually([&] {
    json s = Status("a");
    if (!s.is_object()) return false;
    for (const auto& d : s["devices"]) {
      if (d["device"] == dev_ && d["forked_at"] == json::array({1})) return true;
    }
    return false;
  })) << Status("a").dump()
      << Log("a") << Log("b");
  EXPECT_NE(Log("a").find("HAS FORKED at seq 1"), std::string::npos) << Log("a");
  EXPECT_NE(Cli("a", {"status"}).out.find("FORKED at seq 1"), std::string::npos);
}

TEST_F(RestoreGuardTest, NewDeviceStartsWithoutWaiting) {
  WipeSourceWhilePeerIsDown();
  StartNode("a", {"b"}, {"--new-device"});
  RunResult r = Cli("a", {"append", dev_, "note", "x"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(GuardOf("a"), "");
}

}  // namespace
}  // namespace cairn::testing
