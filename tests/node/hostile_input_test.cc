// Input that once took nodes down, tried against real cairnd processes: JSON
// nested far deeper than any recursive parser's stack allows, from a local user
// and signed by a device (a stolen key, an older build). The source refuses it
// with a clear error; a replica that receives it signed stores and serves it as an
// opaque event; no process crashes, now or on restart.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "node/cluster.h"

namespace cairn::testing {
namespace {

using nlohmann::json;
using HostileInputTest = ClusterTest;

std::string Nested(size_t depth) {
  return std::string(depth, '[') + std::string(depth, ']');
}

std::string KvPut(const std::string& key, const std::string& value) {
  return R"({"store":"s","key":")" + key + R"(","value":)" + value + "}";
}

TEST_F(HostileInputTest, SourceRefusesADeeplyNestedKvValueAndStaysUp) {
  StartNode("a");
  const std::string dev = DeviceOf("a");
  // 50,000 levels in 100 KB: within the payload limit and one argv string.
  RunResult deep = Cli("a", {"append", dev, "kv.put", KvPut("k", Nested(50'000))});
  EXPECT_EQ(deep.exit_code, 1) << deep.err;
  EXPECT_NE(deep.err.find("nests deeper than 100 levels"), std::string::npos) << deep.err;
  ASSERT_TRUE(Running("a")) << Log("a");

  // At the limit it is an ordinary value.
  RunResult ok = Cli("a", {"append", dev, "kv.put", KvPut("k", Nested(99))});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(ok.out, "1\n");
  // An opaque event may carry any bytes: the tail prints them as a string.
  const std::string opaque = Nested(50'000);
  ASSERT_EQ(Cli("a", {"append", dev, "note", opaque}).exit_code, 0);
  RunResult tail = Cli("a", {"tail", dev, "--json"});
  ASSERT_EQ(tail.exit_code, 0) << tail.err;
  auto lines = JsonLines(tail.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["payload"], opaque);
  // The CLI refuses such a line itself, before any parser sees it.
  RunResult line = Cli("a", {"append", dev, "--stdin"},
                       R"({"type":"note","payload":)" + Nested(50'000) + "}\n");
  EXPECT_EQ(line.exit_code, 1);
  EXPECT_NE(line.err.find("nests deeper"), std::string::npos) << line.err;
  EXPECT_EQ(StopNode("a"), 0) << Log("a");
}

TEST_F(HostileInputTest, ReplicaKeepsASignedDeepKvEventAsOpaque) {
  // a's own key signs a kv.put nested 200,000 deep (forge_source bypasses the
  // source's check, as a stolen key would), between two ordinary puts.
  StartNode("a");
  const std::string dev = DeviceOf("a");
  ASSERT_EQ(StopNode("a"), 0);
  std::vector<std::string> forge = {FORGE_SOURCE_BIN, Data("a")};
  for (const auto& f : DevCertFiles("a")) forge.push_back(f);
  RunResult forged = RunProcess(forge, "", env_, 60'000);
  ASSERT_EQ(forged.exit_code, 0) << forged.err;
  ASSERT_EQ(forged.out, "1\n2\n3\n");

  // The source restarts on it and a new replica follows it.
  StartNode("a");
  StartNode("b", {"a"});
  ASSERT_TRUE(Eventually([&] { return Last("b", dev) == 3; })) << Log("b");
  ASSERT_TRUE(Running("b")) << Log("b");
  for (const char* node : {"a", "b"}) {
    EXPECT_EQ(Cli(node, {"kv", "get", dev, "s", "before"}).out, "1\n") << node;
    EXPECT_EQ(Cli(node, {"kv", "get", dev, "s", "after"}).out, "2\n") << node;
    RunResult absent = Cli(node, {"kv", "get", dev, "s", "deep"});
    EXPECT_EQ(absent.exit_code, 1) << node << absent.out;
    RunResult tail = Cli(node, {"tail", dev, "--json"});
    ASSERT_EQ(tail.exit_code, 0) << node << tail.err;
    auto lines = JsonLines(tail.out);
    ASSERT_EQ(lines.size(), 3u) << node;
    EXPECT_TRUE(lines[1]["payload"].is_string()) << node;
    EXPECT_EQ(Cli(node, {"verify", dev}).exit_code, 0) << node;
  }
  // A snapshot, a restart and another replica joining from it change nothing.
  ASSERT_EQ(Cli("a", {"snapshot", dev}).exit_code, 0);
  ASSERT_EQ(StopNode("b"), 0) << Log("b");
  StartNode("b", {"a"});
  StartNode("c", {"b"});
  ASSERT_TRUE(Eventually([&] { return Last("c", dev) == 3; })) << Log("c");
  EXPECT_EQ(Cli("c", {"kv", "get", dev, "s", "after"}).out, "2\n");
  for (const char* node : {"a", "b", "c"}) EXPECT_EQ(StopNode(node), 0) << Log(node);
}

}  // namespace
}  // namespace cairn::testing
