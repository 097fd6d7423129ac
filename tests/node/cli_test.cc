// cairnd and cairn end to end as real processes: a --dev node on a temporary
// data directory and a free port, the CLI's forms and JSON shapes, and every
// start-up error exiting non-zero with its message.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "node/process.h"

namespace cairn::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<json> JsonLines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

class NodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/cairn-node-XXXXXX";
    root_ = mkdtemp(tmpl);
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  void SetUp() override {
    data_ = root_ + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    env_ = {"CAIRN_DEV_CA=" + root_ + "/dev-ca"};
  }

  std::unique_ptr<Child> StartNode(const std::string& data,
                                   const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args{CAIRND_BIN, "--dev",    "--data",
                                  data,       "--listen", "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto child = std::make_unique<Child>(args, env_, data + ".log");
    bool up = WaitForSocket(data + "/cairn.sock", *child, 20'000);
    EXPECT_TRUE(up) << ReadFile(data + ".log");
    return child;
  }

  RunResult Cli(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {CAIRN_BIN, "--data", data_});
    return RunProcess(args, input, env_);
  }
  RunResult Daemon(std::vector<std::string> args) {
    args.insert(args.begin(), CAIRND_BIN);
    return RunProcess(args, "", env_);
  }
  std::string NodeId() {
    std::string id = ReadFile(data_ + "/dev-node-id");
    return id.substr(0, id.find('\n'));
  }

  static std::string root_;
  std::string data_;
  std::vector<std::string> env_;
};

std::string NodeTest::root_;

TEST_F(NodeTest, AppendThenReadBackEveryWay) {
  auto node = StartNode(data_);
  std::string id = NodeId();
  RunResult one = Cli({"append", id, "note", R"({"a":1})"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(one.out, "1\n");
  std::string lines =
      R"({"type":"note","payload":{"b":2}})"
      "\n"
      R"({"type":"kv.put","payload":{"store":"s","key":"k","value":{"x":1}}})"
      "\n"
      R"({"type":"note","payload":"text"})"
      "\n";
  RunResult batch = Cli({"append", id, "--stdin", "--json"}, lines);
  ASSERT_EQ(batch.exit_code, 0) << batch.err;
  auto acks = JsonLines(batch.out);
  ASSERT_FALSE(acks.empty());
  EXPECT_EQ(acks.front()["first"], 2);
  EXPECT_EQ(acks.back()["last"], 4);

  RunResult tail = Cli({"tail", id, "--json"});
  ASSERT_EQ(tail.exit_code, 0) << tail.err;
  auto events = JsonLines(tail.out);
  ASSERT_EQ(events.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(events[i]["seq"], i + 1);
  EXPECT_EQ(events[0]["payload"], json::parse(R"({"a":1})"));
  EXPECT_EQ(events[3]["payload"], "text");
  EXPECT_EQ(events[1]["device"], id);

  RunResult kv = Cli({"kv", "get", id, "s", "k"});
  EXPECT_EQ(kv.exit_code, 0) << kv.err;
  EXPECT_EQ(json::parse(kv.out), json::parse(R"({"x":1})"));
  RunResult absent = Cli({"kv", "get", id, "s", "nope"});
  EXPECT_EQ(absent.exit_code, 1);
  EXPECT_NE(absent.err.find("nope"), std::string::npos) << absent.err;

  RunResult verify = Cli({"verify", id});
  EXPECT_EQ(verify.exit_code, 0) << verify.err;
  RunResult snap = Cli({"snapshot", id});
  ASSERT_EQ(snap.exit_code, 0) << snap.err;
  EXPECT_EQ(snap.out, "4\n");
  // A snapshot deletes nothing (retention does): the events still come as such.
  auto after = JsonLines(Cli({"tail", id, "--json"}).out);
  ASSERT_EQ(after.size(), 4u);
  EXPECT_EQ(after[0]["seq"], 1);
  EXPECT_EQ(json::parse(Cli({"status", "--json"}).out)["devices"][0]["snapshot"], 4);
  EXPECT_EQ(node->Stop(), 0) << ReadFile(data_ + ".log");
}

TEST_F(NodeTest, DataDirectoryAndStoreArePrivate) {
  fs::create_directories(data_);
  fs::permissions(data_, fs::perms::all);  // as an older cairnd or a loose umask left it
  { std::ofstream(data_ + "/leftover") << "x"; }
  fs::permissions(data_ + "/leftover", fs::perms::owner_read | fs::perms::others_read);
  auto node = StartNode(data_);
  ASSERT_EQ(Cli({"append", NodeId(), "note", "{}"}).exit_code, 0);
  auto mode = [](const fs::path& p) {
    return fs::status(p).permissions() & fs::perms::all;
  };
  EXPECT_EQ(mode(data_), fs::perms::owner_all);
  size_t files = 0;
  for (const auto& e : fs::recursive_directory_iterator(data_)) {
    if (e.is_directory()) {
      EXPECT_EQ(mode(e.path()), fs::perms::owner_all) << e.path();
    } else if (e.is_regular_file()) {
      ++files;
      EXPECT_EQ(mode(e.path()) & (fs::perms::group_all | fs::perms::others_all),
                fs::perms::none)
          << e.path();
    }
  }
  EXPECT_GT(files, 3u);  // the LevelDB files were looked at
  EXPECT_EQ(node->Stop(), 0);
}

TEST_F(NodeTest, StatusJsonHasTheContractShape) {
  auto node = StartNode(data_);
  std::string id = NodeId();
  ASSERT_EQ(Cli({"append", id, "note", "{}"}).exit_code, 0);
  RunResult st = Cli({"status", "--json"});
  ASSERT_EQ(st.exit_code, 0) << st.err;
  json s = json::parse(st.out);
  EXPECT_EQ(s["node"], id);
  EXPECT_TRUE(s["peers"].is_array());
  ASSERT_EQ(s["devices"].size(), 1u);
  json d = s["devices"][0];
  for (const char* k :
       {"device", "first", "last", "snapshot", "source", "via", "behind"}) {
    EXPECT_TRUE(d.contains(k)) << k;
  }
  EXPECT_EQ(d["device"], id);
  EXPECT_EQ(d["last"], 1);
  EXPECT_EQ(d["source"], true);
  EXPECT_TRUE(d["via"].is_null());
}

TEST_F(NodeTest, FollowSeesLiveEvents) {
  auto node = StartNode(data_);
  std::string id = NodeId();
  std::string out = data_ + ".tail";
  Child tail({CAIRN_BIN, "--data", data_, "tail", id, "--follow", "--json"}, env_,
             data_ + ".tail.err", out);
  RunResult a = Cli({"append", id, "--stdin"}, R"({"type":"t","payload":1})"
                                               "\n"
                                               R"({"type":"t","payload":2})"
                                               "\n");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  bool seen = false;
  for (int i = 0; i < 1000 && !seen; ++i) {  // bounded: 10 s
    seen = JsonLines(ReadFile(out)).size() == 2;
    if (!seen) usleep(10'000);
  }
  EXPECT_TRUE(seen) << ReadFile(out) << ReadFile(data_ + ".tail.err");
  EXPECT_EQ(node->Stop(), 0);
  EXPECT_NE(tail.Wait(10'000), 0);  // the node went away: non-zero
}

std::string EventLines(int n) {
  std::string s;
  for (int i = 1; i <= n; ++i) {
    s += R"({"type":"n","payload":)" + std::to_string(i) + "}\n";
  }
  return s;
}

// Checks that the --json acks of `cairn append --stdin` tile 1..last with no gap.
uint64_t LastOfContiguousAcks(const std::string& out) {
  uint64_t next = 1;
  for (const json& a : JsonLines(out)) {
    EXPECT_EQ(a["first"], next);
    next = a["last"].get<uint64_t>() + 1;
  }
  return next - 1;
}

TEST_F(NodeTest, BulkStdinAppendIsAcknowledgedInOrder) {
  auto node = StartNode(data_);
  std::string id = NodeId();
  RunResult r = Cli({"append", id, "--stdin", "--json"}, EventLines(20'000));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(LastOfContiguousAcks(r.out), 20'000u);
  auto events = JsonLines(Cli({"tail", id, "--json", "--from", "19990"}).out);
  ASSERT_EQ(events.size(), 11u);
  EXPECT_EQ(events.back()["payload"], 20'000);
}

TEST_F(NodeTest, AppendPrintsOnlyWhatWasAcknowledgedWhenTheNodeDies) {
  auto node = StartNode(data_);
  std::string id = NodeId();
  std::string input = data_ + ".in", acks = data_ + ".acks";
  std::ofstream(input) << EventLines(200'000);
  Child append({CAIRN_BIN, "--data", data_, "append", id, "--stdin", "--json"}, env_,
               acks + ".err", acks, input);
  bool some = false;
  for (int i = 0; i < 1000 && !some; ++i) {  // bounded: 10 s
    some = ReadFile(acks).find('\n') != std::string::npos;
    if (!some) usleep(10'000);
  }
  ASSERT_TRUE(some) << ReadFile(acks + ".err");
  node->Kill(SIGKILL);
  ASSERT_EQ(node->Wait(10'000), 128 + SIGKILL);
  EXPECT_NE(append.Wait(10'000), 0);
  uint64_t acked = LastOfContiguousAcks(ReadFile(acks));
  auto again = StartNode(data_);
  json status = json::parse(Cli({"status", "--json"}).out);
  EXPECT_GE(status["devices"][0]["last"].get<uint64_t>(), acked);
}

TEST_F(NodeTest, SigtermCommitsOrRefusesAppendsInFlightAndExitsCleanly) {
  auto node = StartNode(data_);
  std::string id = NodeId();
  std::string input = data_ + ".in", acks = data_ + ".acks";
  std::ofstream(input) << EventLines(200'000);
  Child append({CAIRN_BIN, "--data", data_, "append", id, "--stdin", "--json"}, env_,
               acks + ".err", acks, input);
  bool some = false;
  for (int i = 0; i < 1000 && !some; ++i) {  // bounded: 10 s
    some = ReadFile(acks).find('\n') != std::string::npos;
    if (!some) usleep(10'000);
  }
  ASSERT_TRUE(some) << ReadFile(acks + ".err");
  EXPECT_EQ(node->Stop(), 0) << ReadFile(data_ + ".log");
  int rc = append.Wait(10'000);
  uint64_t acked = LastOfContiguousAcks(ReadFile(acks));
  if (acked < 200'000u) {
    EXPECT_NE(rc, 0);
  }
  auto again = StartNode(data_);
  json status = json::parse(Cli({"status", "--json"}).out);
  EXPECT_GE(status["devices"][0]["last"].get<uint64_t>(), acked);
}

TEST_F(NodeTest, ConfigFileIsReadAndFlagsWinOverIt) {
  std::string config = data_ + ".toml";
  std::ofstream(config) << "data = \"" << data_ << ".not-this\"\n"
                        << "snapshot-every = 2\ndev = true\n"
                        << "dead-interval-ms = 3000\n";
  auto child = std::make_unique<Child>(
      std::vector<std::string>{CAIRND_BIN, "--config", config, "--data", data_,
                               "--listen", "127.0.0.1:0"},
      env_, data_ + ".log");
  ASSERT_TRUE(WaitForSocket(data_ + "/cairn.sock", *child, 20'000))
      << ReadFile(data_ + ".log");
  std::string id = NodeId();
  ASSERT_EQ(Cli({"append", id, "--stdin"}, EventLines(5)).exit_code, 0);
  json status = json::parse(Cli({"status", "--json"}).out);
  EXPECT_GE(status["devices"][0]["snapshot"].get<uint64_t>(), 2u);
  EXPECT_FALSE(fs::exists(data_ + ".not-this"));
}

TEST_F(NodeTest, SnapshotsAreTakenByTime) {
  auto node = StartNode(data_, {"--snapshot-every-seconds", "1"});
  std::string id = NodeId();
  ASSERT_EQ(Cli({"append", id, "note", "1"}).exit_code, 0);
  EXPECT_EQ(json::parse(Cli({"status", "--json"}).out)["devices"][0]["snapshot"], 0);
  usleep(1'200'000);
  ASSERT_EQ(Cli({"append", id, "note", "2"}).exit_code, 0);
  EXPECT_EQ(json::parse(Cli({"status", "--json"}).out)["devices"][0]["snapshot"], 2);
  RunResult bad = Daemon({"--dev", "--data", data_ + "-2", "--retain-max-bytes", "lots"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("retain-max-bytes"), std::string::npos) << bad.err;
  RunResult resync = Cli({"resync", id});  // a source never resyncs
  EXPECT_NE(resync.exit_code, 0);
  EXPECT_NE(resync.err.find("only a replica"), std::string::npos) << resync.err;
}

TEST_F(NodeTest, AppendForADeviceWeDoNotHoldFails) {
  auto node = StartNode(data_);
  RunResult r = Cli({"append", "someone-else", "note", "{}"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("someone-else"), std::string::npos) << r.err;
}

TEST_F(NodeTest, UnknownDeviceIsNamed) {
  auto node = StartNode(data_);
  for (auto args :
       std::vector<std::vector<std::string>>{{"tail", "nobody"},
                                             {"kv", "list", "nobody", "s"},
                                             {"kv", "get", "nobody", "s", "k"},
                                             {"verify", "nobody"},
                                             {"snapshot", "nobody"}}) {
    RunResult r = Cli(args);
    EXPECT_NE(r.exit_code, 0) << args[0];
    EXPECT_NE(r.err.find("'nobody'"), std::string::npos) << r.err;
  }
}

TEST_F(NodeTest, CliWithoutANodeSaysSo) {
  RunResult r = Cli({"status"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("no cairnd is running"), std::string::npos) << r.err;
}

TEST_F(NodeTest, BusyPortIsRefused) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string port = std::to_string(ntohs(addr.sin_port));
  RunResult r = Daemon({"--dev", "--data", data_, "--listen", "127.0.0.1:" + port});
  close(fd);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("127.0.0.1:" + port), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("in use"), std::string::npos) << r.err;
}

TEST_F(NodeTest, DataDirectoryOfARunningNodeIsRefused) {
  auto node = StartNode(data_);
  RunResult r = Daemon({"--dev", "--data", data_, "--listen", "127.0.0.1:0"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("already used by a running cairnd"), std::string::npos) << r.err;
}

TEST_F(NodeTest, DataDirectoryThatIsAFileIsRefused) {
  std::ofstream(data_) << "x";
  RunResult r = Daemon({"--dev", "--data", data_});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("not a directory"), std::string::npos) << r.err;
}

TEST_F(NodeTest, MissingCertificateFileIsNamed) {
  std::string missing = root_ + "/missing.crt";
  RunResult r =
      Daemon({"--data", data_, "--ca", missing, "--cert", missing, "--key", missing});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
}

TEST_F(NodeTest, BadFlagsAreUsageErrors) {
  RunResult d = Daemon({"--no-such-flag"});
  EXPECT_NE(d.exit_code, 0);
  EXPECT_NE(d.err.find("no-such-flag"), std::string::npos) << d.err;
  RunResult c = Cli({"frobnicate"});
  EXPECT_NE(c.exit_code, 0);
  RunResult help = Daemon({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* f : {"--data",
                        "--listen",
                        "--peer",
                        "--dns-seed",
                        "--peer-exchange",
                        "--ca",
                        "--cert",
                        "--key",
                        "--device-cert",
                        "--snapshot-every",
                        "--sync-writes",
                        "--config",
                        "--dev",
                        "--dead-interval-ms",
                        "--snapshot-every-seconds",
                        "--retain-acks",
                        "--retain-max-age",
                        "--retain-max-bytes",
                        "--retain-every-ms",
                        "--max-snapshot-bytes",
                        "--max-staged-bytes"}) {
    EXPECT_NE(help.out.find(f), std::string::npos) << f;
  }
  RunResult dead = Daemon({"--dev", "--data", data_, "--dead-interval-ms", "10"});
  EXPECT_NE(dead.exit_code, 0);
  EXPECT_NE(dead.err.find("dead-interval-ms"), std::string::npos) << dead.err;
}

}  // namespace
}  // namespace cairn::testing
