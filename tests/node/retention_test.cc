// Retention against real processes: a snapshot at the source no longer deletes
// what a follower that is away has not received; events go once the followers
// hold them, or past the operator's limits, and then a tail says what is gone
// (exit 3 unless --allow-gaps); a replica offered only a snapshot beyond its head
// keeps its events and says it is stalled until the operator runs `cairn resync`.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "node/cluster.h"

namespace cairn::testing {
namespace {

using nlohmann::json;

class RetentionTest : public ClusterTest {
 protected:
  // `n` notes of about `bytes` bytes each, appended at `node` in one --stdin run.
  void AppendNotes(const std::string& node, int from, int n, size_t bytes = 16) {
    std::string lines;
    for (int i = from; i < from + n; ++i) {
      std::string text = std::to_string(i);
      text.resize(std::max(bytes, text.size()), '.');
      lines += json{{"type", "note"}, {"payload", text}}.dump() + "\n";
    }
    RunResult r = Cli(node, {"append", dev_, "--stdin", "--batch", "50"}, lines);
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  json Device(const std::string& node) {
    json s = Status(node);
    if (!s.is_object()) return json();
    for (const auto& d : s["devices"]) {
      if (d["device"] == dev_) return d;
    }
    return json();
  }

  uint64_t First(const std::string& node) {
    json d = Device(node);
    return d.is_object() ? d["first"].get<uint64_t>() : 0;
  }

  // The event lines of `cairn tail DEVICE --from 1 --json` at `node`.
  std::vector<json> TailEvents(const std::string& node) {
    RunResult r = Cli(node, {"tail", dev_, "--from", "1", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<json> out;
    for (auto& j : JsonLines(r.out)) {
      if (j.contains("seq")) out.push_back(std::move(j));
    }
    return out;
  }

  // b up, then a (the source, with `flags`) with --peer b; ten notes at a, held by b.
  void SourceAndFollower(std::vector<std::string> flags) {
    StartNode("b");
    flags.insert(flags.end(), {"--new-device", "--retain-every-ms", "200"});
    StartNode("a", {"b"}, flags);
    dev_ = DeviceOf("a");
    AppendNotes("a", 1, 10);
    ASSERT_TRUE(Eventually([&] { return Last("b", dev_) == 10; })) << Log("b");
  }

  std::string dev_;
};

TEST_F(RetentionTest, AFollowerThatWasAwayGetsEveryEventNotOnlyTheSnapshot) {
  ASSERT_NO_FATAL_FAILURE(SourceAndFollower({"--snapshot-every", "50"}));
  // a has noted b as a follower that holds 10 (a retention pass every 200 ms).
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  ASSERT_EQ(StopNode("b"), 0);

  AppendNotes("a", 11, 300);  // snapshots at 50, 100 … 300 while b is away
  const uint64_t snapshot = Device("a")["snapshot"];
  ASSERT_EQ(snapshot, 310u) << Status("a").dump();
  // What b holds may go; what it lacks stays, snapshots or not.
  ASSERT_TRUE(Eventually([&] { return First("a") == 11; }, 20'000)) << Status("a").dump();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ(First("a"), 11u) << Log("a");
  EXPECT_NE(Device("a")["retention"].get<std::string>().find("follower " + DeviceOf("b") +
                                                             " holds up to 10"),
            std::string::npos)
      << Status("a").dump();

  StartNode("b");
  ASSERT_TRUE(Eventually([&] { return Last("b", dev_) == 310; })) << Log("b");
  // b got the events themselves, not a snapshot standing for 11..300.
  std::vector<json> events = TailEvents("b");
  ASSERT_EQ(events.size(), 310u);
  for (size_t i = 0; i < events.size(); ++i) {
    ASSERT_EQ(events[i]["seq"].get<uint64_t>(), i + 1);
    ASSERT_EQ(
        events[i]["payload"].get<std::string>().substr(0, std::to_string(i + 1).size()),
        std::to_string(i + 1));
  }
  EXPECT_EQ(Device("b")["first"], 1);
  // Now that b holds everything, a keeps nothing below its snapshot.
  ASSERT_TRUE(Eventually([&] { return First("a") == snapshot + 1; }, 20'000))
      << Status("a").dump() << Log("a");
  EXPECT_NE(Log("a").find("retention: deleted"), std::string::npos);
}

TEST_F(RetentionTest, ATailOfDeletedEventsSaysSoAndFailsUnlessAllowed) {
  StartNode("a", {},
            {"--new-device", "--retain-max-bytes", "20000", "--retain-every-ms", "200"});
  dev_ = DeviceOf("a");
  AppendNotes("a", 1, 400, 100);  // about 60 KB of events
  // No follower, no snapshot: the size limit alone makes the source snapshot and
  // delete the oldest.
  ASSERT_TRUE(Eventually([&] { return First("a") > 1; }, 20'000)) << Status("a").dump();
  const uint64_t first = First("a");
  const uint64_t snapshot = Device("a")["snapshot"];
  EXPECT_EQ(snapshot, 400u);

  RunResult r = Cli("a", {"tail", dev_, "--from", "1"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find(dev_ + " truncated 1.." + std::to_string(first - 1) +
                       " by retention; the snapshot at 400 stands for 1..400"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.err.find("deleted by retention"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find(" note "), std::string::npos) << r.out;  // stopped at the gap

  r = Cli("a", {"tail", dev_, "--from", "1", "--allow-gaps", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<json> lines = JsonLines(r.out);
  ASSERT_GE(lines.size(), 2u) << r.out;
  EXPECT_EQ(lines[0]["truncated"]["from"], 1);
  EXPECT_EQ(lines[0]["truncated"]["to"], first - 1);
  EXPECT_EQ(lines[1]["snapshot"], 400);

  // From a seq still stored: the events, no gap.
  r = Cli("a", {"tail", dev_, "--from", std::to_string(first)});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.find("truncated"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(dev_ + " " + std::to_string(first) + " note "), std::string::npos);
}

TEST_F(RetentionTest, AReplicaOfferedOnlyASnapshotBeyondItsHeadKeepsItsEvents) {
  ASSERT_NO_FATAL_FAILURE(SourceAndFollower({"--retain-max-bytes", "20000"}));
  ASSERT_EQ(StopNode("b"), 0);
  // The size limit overrides b's acknowledgement: a deletes events b never got.
  AppendNotes("a", 11, 400, 100);
  ASSERT_TRUE(Eventually([&] { return First("a") > 11; }, 20'000)) << Status("a").dump();

  StartNode("b");
  ASSERT_TRUE(Eventually([&] {
    json d = Device("b");
    return d.is_object() && d["stalled"].is_string();
  })) << Status("b").dump()
      << Log("b");
  json d = Device("b");
  EXPECT_EQ(d["last"], 10);
  EXPECT_NE(d["stalled"].get<std::string>().find("cairn resync " + dev_),
            std::string::npos);
  EXPECT_NE(Cli("b", {"status"}).out.find("STALLED"), std::string::npos);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_EQ(Last("b", dev_), 10u);  // nothing installed over our events
  EXPECT_EQ(TailEvents("b").size(), 10u);

  RunResult r = Cli("b", {"resync", dev_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(Eventually([&] { return Last("b", dev_) == 410; })) << Log("b");
  EXPECT_TRUE(Device("b")["stalled"].is_null());
  EXPECT_EQ(Cli("b", {"verify", dev_}).exit_code, 0);
  EXPECT_EQ(Cli("b", {"resync", "no-such-device"}).exit_code, 1);
}

// The other side of a fork: a is restored from a backup at 10 and told
// --new-device (the operator's mistake), so it signs another 11, 12 … while b
// holds the first 11..15. a's size limit deletes its new events before b is back.
// b used to install a's snapshot over its own events without a check: the fork
// went unseen and b's 11..15 were gone. Now b keeps them and says it is stalled.
TEST_F(RetentionTest, AReplicaOnTheOtherSideOfAForkKeepsItsHistory) {
  ASSERT_NO_FATAL_FAILURE(SourceAndFollower({"--retain-max-bytes", "20000"}));
  ASSERT_EQ(StopNode("a"), 0);
  const std::string backup = Data("a") + ".backup";
  std::filesystem::copy(Data("a"), backup, std::filesystem::copy_options::recursive);
  StartNode("a", {"b"}, {"--retain-max-bytes", "20000", "--retain-every-ms", "200"});
  AppendNotes("a", 11, 5);  // b holds 1..15 of the first history
  ASSERT_TRUE(Eventually([&] { return Last("b", dev_) == 15; })) << Log("b");
  ASSERT_EQ(StopNode("b"), 0);
  ASSERT_EQ(StopNode("a"), 0);
  std::filesystem::remove_all(Data("a"));
  std::filesystem::rename(backup, Data("a"));
  StartNode("a", {"b"},
            {"--new-device", "--retain-max-bytes", "20000", "--retain-every-ms", "200"});
  AppendNotes("a", 1000, 400, 100);  // seqs 11.. of another history
  ASSERT_TRUE(Eventually([&] { return First("a") > 16; }, 20'000)) << Status("a").dump();

  StartNode("b");
  ASSERT_TRUE(Eventually([&] { return Device("b")["stalled"].is_string(); }))
      << Status("b").dump() << Log("b");
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  std::vector<json> events = TailEvents("b");
  ASSERT_EQ(events.size(), 15u);  // the first history, whole
  EXPECT_EQ(events[14]["payload"].get<std::string>().substr(0, 2), "15");
  EXPECT_EQ(Cli("b", {"verify", dev_}).exit_code, 0);
}

}  // namespace
}  // namespace cairn::testing
