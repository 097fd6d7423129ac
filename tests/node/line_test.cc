// Three (then four) real cairnd processes on loopback in a line A - B - C with
// peer exchange off, driven only through the cairn CLI: a bulk append at A, a
// live tail at C, B killed with SIGKILL and restarted while appends continue, and
// a fourth node that joins after a snapshot at A.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "node/cluster.h"

namespace cairn::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using LineTest = ClusterTest;

TEST_F(LineTest, EveryAcknowledgedEventReachesTheEndOfTheLineThroughACrash) {
  StartNode("a");
  StartNode("b", {"a"});
  StartNode("c", {"b"});
  const std::string dev = DeviceOf("a");

  // A live tail at C for the whole run.
  Child tail({CAIRN_BIN, "--data", Data("c"), "tail", dev, "--follow", "--json"}, env_,
             Data("tail.err"), Data("tail.out"));

  // The bulk append at A: JSON lines, some of them KV puts.
  constexpr int kEvents = 20000;
  {
    std::ofstream in(Data("input.jsonl"));
    for (int i = 1; i <= kEvents; ++i) {
      if (i % 500 == 0) {
        in << R"({"type":"kv.put","payload":{"store":"s","key":"k)" << i / 500
           << R"(","value":)" << i << "}}\n";
      } else {
        in << R"({"type":"bulk","payload":{"i":)" << i << "}}\n";
      }
    }
  }
  Child appender({CAIRN_BIN, "--data", Data("a"), "append", dev, "--stdin", "--json"},
                 env_, Data("append.err"), Data("append.out"), Data("input.jsonl"));

  // Kill B while appends are flowing, then bring it back on the same data.
  ASSERT_TRUE(Eventually([&] { return Last("c", dev) >= 200; }));
  KillNode("b");
  StartNode("b", {"a"});
  ASSERT_EQ(appender.Wait(60'000), 0) << Slurp(Data("append.err"));

  uint64_t acked = 0;
  {
    std::istringstream acks(Slurp(Data("append.out")));
    uint64_t expect = 1;
    for (std::string line; std::getline(acks, line);) {
      json j = json::parse(line);
      ASSERT_EQ(j["first"].get<uint64_t>(), expect) << "acks are not contiguous";
      expect = j["last"].get<uint64_t>() + 1;
      acked = j["last"].get<uint64_t>();
    }
  }
  ASSERT_EQ(acked, static_cast<uint64_t>(kEvents));
  ASSERT_TRUE(Eventually([&] { return Last("c", dev) == acked; })) << Status("c").dump();

  // The tail at C saw every event exactly once, in order.
  ASSERT_TRUE(Eventually(
      [&] {
        const std::string out = Slurp(Data("tail.out"));
        return std::count(out.begin(), out.end(), '\n') >= kEvents;
      },
      30'000));
  tail.Kill(SIGKILL);
  tail.Wait(5'000);
  {
    std::istringstream lines(Slurp(Data("tail.out")));
    uint64_t expect = 1;
    for (std::string line; std::getline(lines, line);) {
      json j = json::parse(line);
      if (!j.contains("seq")) continue;
      ASSERT_EQ(j["seq"].get<uint64_t>(), expect) << "gap or duplicate at C";
      ++expect;
    }
    EXPECT_EQ(expect, acked + 1);
  }

  // Status shows the peers; KV at C matches A.
  json sc = Status("c");
  bool b_active = false;
  for (const auto& p : sc["peers"]) b_active |= p["state"] == "active";
  EXPECT_TRUE(b_active) << sc.dump();
  EXPECT_NE(Cli("a", {"kv", "get", dev, "s", "k30"}).out.find("15000"),
            std::string::npos);
  EXPECT_EQ(Cli("c", {"kv", "get", dev, "s", "k30"}).out,
            Cli("a", {"kv", "get", dev, "s", "k30"}).out);
  EXPECT_EQ(Cli("c", {"verify", dev}).exit_code, 0);

  // A fourth node joining after a snapshot at A gets the snapshot and what follows.
  ASSERT_EQ(Cli("a", {"snapshot", dev}).exit_code, 0);
  ASSERT_EQ(Cli("a", {"append", dev, "after", "{\"x\":1}"}).exit_code, 0);
  StartNode("d", {"a"});
  ASSERT_TRUE(Eventually([&] { return Last("d", dev) == acked + 1; }));
  json sd = Status("d");
  for (const auto& d : sd["devices"]) {
    if (d["device"] == dev) {
      EXPECT_EQ(d["snapshot"].get<uint64_t>(), acked);
    }
  }
  EXPECT_EQ(Cli("d", {"kv", "get", dev, "s", "k30"}).out,
            Cli("a", {"kv", "get", dev, "s", "k30"}).out);
}

}  // namespace
}  // namespace cairn::testing
