// `cairn tail --peer` against real cairnd processes over TLS: the same output as
// the local tail (plain, --json, --from, snapshot first), --follow, --all
// --follow picking up a device that appears later (also locally), refusals with
// one clear line, and a second signal making cairnd exit at once.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "node/process.h"

namespace cairn::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

size_t Lines(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

class TailPeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cairn-tailpeer-XXXXXX";
    root_ = mkdtemp(tmpl);
    ca_dir_ = root_ + "/dev-ca";
    env_ = {"CAIRN_DEV_CA=" + ca_dir_};
  }
  void TearDown() override {
    nodes_.clear();  // SIGKILL whatever still runs
    fs::remove_all(root_);
  }

  std::string Data(const std::string& name) { return root_ + "/" + name; }
  std::string Address(const std::string& name) {
    return "127.0.0.1:" + std::to_string(ports_[name]);
  }

  void StartNode(const std::string& name, const std::string& peer = "",
                 const std::vector<std::string>& extra = {}) {
    if (!ports_.count(name)) ports_[name] = FreePort();
    std::vector<std::string> argv = {CAIRND_BIN,        "--dev",    "--data",
                                     Data(name),        "--listen", Address(name),
                                     "--peer-exchange", "off"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    // Fresh nodes: --new-device, or the restore guard refuses their first appends
    // until their peer answered.
    if (!peer.empty()) argv.insert(argv.end(), {"--peer", Address(peer), "--new-device"});
    nodes_[name] = std::make_unique<Child>(argv, env_, Data(name) + ".log");
    ASSERT_TRUE(WaitForSocket(Data(name) + "/cairn.sock", *nodes_[name], 20'000))
        << Slurp(Data(name) + ".log");
  }

  std::string DeviceOf(const std::string& name) {
    std::string id = Slurp(Data(name) + "/dev-node-id");
    return id.substr(0, id.find('\n'));
  }

  // A node certificate for the CLI, made by certs/make-node.sh in `dir` (a CA
  // directory; made by certs/make-ca.sh when it has none).
  std::vector<std::string> CliCert(const std::string& dir, const std::string& name) {
    if (!fs::exists(dir + "/ca.crt")) {
      RunResult ca = RunProcess({CAIRN_CERTS_DIR "/make-ca.sh", dir}, "", env_);
      EXPECT_EQ(ca.exit_code, 0) << ca.err;
    }
    if (!fs::exists(dir + "/" + name + ".crt")) {
      RunResult r = RunProcess({CAIRN_CERTS_DIR "/make-node.sh", dir, name}, "", env_);
      EXPECT_EQ(r.exit_code, 0) << r.err;
    }
    return {"--ca",  dir + "/ca.crt",          "--cert", dir + "/" + name + ".crt",
            "--key", dir + "/" + name + ".key"};
  }

  std::vector<std::string> PeerArgs(const std::string& node) {
    std::vector<std::string> args = {"--peer", Address(node)};
    for (auto& a : CliCert(ca_dir_, "cli")) args.push_back(a);
    return args;
  }

  RunResult Cli(const std::string& node, std::vector<std::string> args,
                const std::string& input = "") {
    args.insert(args.begin(), {CAIRN_BIN, "--data", Data(node)});
    return RunProcess(args, input, env_, 30'000);
  }
  // `cairn tail ARGS --peer NODE ...` (no local node involved).
  RunResult PeerTail(const std::string& node, std::vector<std::string> args) {
    args.insert(args.begin(), {CAIRN_BIN, "tail"});
    for (auto& a : PeerArgs(node)) args.push_back(a);
    return RunProcess(args, "", env_, 30'000);
  }
  std::unique_ptr<Child> FollowChild(std::vector<std::string> argv,
                                     const std::string& out) {
    return std::make_unique<Child>(argv, env_, out + ".err", out);
  }

  uint64_t Last(const std::string& node, const std::string& device) {
    RunResult r = Cli(node, {"status", "--json"});
    if (r.exit_code != 0) return 0;
    const json status = json::parse(r.out);
    for (const auto& d : status["devices"]) {
      if (d["device"] == device) return d["last"].get<uint64_t>();
    }
    return 0;
  }

  // Polls (bounded) until `done` holds.
  bool Eventually(const std::function<bool()>& done, int timeout_ms = 30'000) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done();
  }

  void Append(const std::string& node, const std::string& lines) {
    RunResult r = Cli(node, {"append", DeviceOf(node), "--stdin"}, lines);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  static std::string Events(int first, int n) {
    std::string s;
    for (int i = first; i < first + n; ++i) {
      if (i % 3 == 0) {
        s += R"({"type":"kv.put","payload":{"store":"s","key":"k)" + std::to_string(i) +
             R"(","value":)" + std::to_string(i) + "}}\n";
      } else {
        s += R"({"type":"note","payload":{"i":)" + std::to_string(i) + "}}\n";
      }
    }
    return s;
  }

  std::string root_, ca_dir_;
  std::vector<std::string> env_;
  std::map<std::string, int> ports_;
  std::map<std::string, std::unique_ptr<Child>> nodes_;
};

TEST_F(TailPeerTest, PrintsARemoteDeviceExactlyAsTheLocalTailDoes) {
  StartNode("a");
  StartNode("b", "a");
  const std::string dev = DeviceOf("a");
  Append("a", Events(1, 20));
  ASSERT_TRUE(Eventually([&] { return Last("b", dev) == 20; }))
      << Slurp(Data("b.log")) << Cli("b", {"status"}).out;
  for (std::vector<std::string> form : {std::vector<std::string>{},
                                        {"--json"},
                                        {"--from", "7"},
                                        {"--from", "7", "--json"},
                                        {"--from", "21"}}) {
    std::vector<std::string> args = {"tail", dev};
    args.insert(args.end(), form.begin(), form.end());
    RunResult local = Cli("a", args);
    args.erase(args.begin());
    RunResult remote = PeerTail("b", args);  // through b, a relay
    ASSERT_EQ(remote.exit_code, 0) << remote.err;
    EXPECT_EQ(remote.out, local.out) << json(form).dump();
    EXPECT_EQ(remote.err, "");
  }
  EXPECT_EQ(Lines(PeerTail("b", {dev, "--from", "7"}).out), 14u);
  // The CLI was no peer of b: not in its table, nothing dialled back.
  json status = json::parse(Cli("b", {"status", "--json"}).out);
  for (const auto& p : status["peers"]) EXPECT_NE(p["id"], "cli") << status.dump();
}

// Events 1..9 deleted by retention (a size limit of one byte, then lifted): a tail
// from below 10 gets the gap line and the snapshot, and exits 3 unless
// --allow-gaps, over TLS exactly as locally.
TEST_F(TailPeerTest, SnapshotComesFirstWhenFromIsBelowWhatIsStored) {
  StartNode("a", "", {"--retain-max-bytes", "1", "--retain-every-ms", "100"});
  const std::string dev = DeviceOf("a");
  Append("a", Events(1, 9));
  for (int i = 0; i < 200 && Cli("a", {"status", "--json"}).out.find("\"first\":10") ==
                                 std::string::npos;
       ++i) {
    usleep(50'000);
  }
  ASSERT_EQ(nodes_["a"]->Stop(), 0);
  StartNode("a");
  Append("a", Events(10, 3));
  for (std::vector<std::string> form :
       {std::vector<std::string>{"--json", "--allow-gaps"},
        {"--json", "--from", "4", "--allow-gaps"},
        {"--from", "9", "--allow-gaps"},
        {"--from", "9"},
        {"--from", "10", "--json"}}) {
    std::vector<std::string> args = {"tail", dev};
    args.insert(args.end(), form.begin(), form.end());
    RunResult local = Cli("a", args);
    args.erase(args.begin());
    RunResult remote = PeerTail("a", args);
    const int code = form.size() == 2 && form[0] == "--from" && form[1] == "9" ? 3 : 0;
    ASSERT_EQ(remote.exit_code, code) << remote.err;
    ASSERT_EQ(local.exit_code, code) << local.err;
    EXPECT_EQ(remote.out, local.out) << json(form).dump();
  }
  std::istringstream lines(
      PeerTail("a", {dev, "--json", "--from", "2", "--allow-gaps"}).out);
  std::string gap;
  std::getline(lines, gap);
  EXPECT_EQ(json::parse(gap)["truncated"], json::parse(R"({"from":2,"to":9})"));
  std::string first;
  std::getline(lines, first);
  json snap = json::parse(first);
  EXPECT_EQ(snap["snapshot"], 9);
  EXPECT_EQ(snap["kv"]["s"]["k6"], 6);
  std::string next;
  std::getline(lines, next);
  EXPECT_EQ(json::parse(next)["seq"], 10);
}

TEST_F(TailPeerTest, FollowReceivesLiveEventsUntilInterrupted) {
  StartNode("a");
  const std::string dev = DeviceOf("a");
  Append("a", Events(1, 2));
  std::vector<std::string> argv = {CAIRN_BIN, "tail", dev, "--follow", "--json"};
  for (auto& a : PeerArgs("a")) argv.push_back(a);
  auto tail = FollowChild(argv, Data("follow.out"));
  ASSERT_TRUE(Eventually([&] { return Lines(Slurp(Data("follow.out"))) == 2; }))
      << Slurp(Data("follow.out.err"));
  Append("a", Events(3, 3));
  ASSERT_TRUE(Eventually([&] { return Lines(Slurp(Data("follow.out"))) == 5; }))
      << Slurp(Data("follow.out.err"));
  tail->Kill(SIGINT);
  EXPECT_EQ(tail->Wait(10'000), 0) << Slurp(Data("follow.out.err"));
  EXPECT_EQ(Slurp(Data("follow.out")), Cli("a", {"tail", dev, "--json"}).out);
}

TEST_F(TailPeerTest, AllFollowPicksUpADeviceThatAppearsLater) {
  StartNode("a");
  Append("a", Events(1, 1));
  std::vector<std::string> remote = {CAIRN_BIN, "tail", "--all", "--follow", "--json"};
  for (auto& a : PeerArgs("a")) remote.push_back(a);
  auto over_tls = FollowChild(remote, Data("remote.out"));
  auto local =
      FollowChild({CAIRN_BIN, "--data", Data("a"), "tail", "--all", "--follow", "--json"},
                  Data("local.out"));
  ASSERT_TRUE(Eventually([&] {
    return Lines(Slurp(Data("remote.out"))) == 1 && Lines(Slurp(Data("local.out"))) == 1;
  })) << Slurp(Data("remote.out.err"))
      << Slurp(Data("local.out.err"));
  StartNode("c", "a");  // a new device, c's own, reaches a
  Append("c", Events(1, 2));
  const std::string later = DeviceOf("c");
  auto seen = [&](const std::string& file) {
    std::istringstream in(Slurp(file));
    size_t n = 0;
    for (std::string line; std::getline(in, line);)
      n += json::parse(line)["device"] == later;
    return n == 2;
  };
  EXPECT_TRUE(Eventually([&] { return seen(Data("remote.out")); }))
      << Slurp(Data("remote.out")) << Slurp(Data("remote.out.err"));
  EXPECT_TRUE(Eventually([&] { return seen(Data("local.out")); }))
      << Slurp(Data("local.out")) << Slurp(Data("local.out.err"));
  over_tls->Kill(SIGTERM);
  EXPECT_EQ(over_tls->Wait(10'000), 0);
}

TEST_F(TailPeerTest, CertificatesOfAnotherCaAreRefusedWithAClearLine) {
  StartNode("a");
  const std::string dev = DeviceOf("a");
  Append("a", Events(1, 1));
  std::vector<std::string> theirs = CliCert(root_ + "/other-ca", "mallory");
  // We trust the node (both CAs in our file), but our certificate is of the other
  // CA: the node refuses the handshake.
  const std::string both = root_ + "/both-cas.crt";
  std::ofstream(both) << Slurp(ca_dir_ + "/ca.crt") << Slurp(theirs[1]);
  RunResult refused = RunProcess({CAIRN_BIN, "tail", dev, "--peer", Address("a"), "--ca",
                                  both, "--cert", theirs[3], "--key", theirs[5]},
                                 "", env_);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_EQ(refused.out, "");
  EXPECT_EQ(Lines(refused.err), 1u) << refused.err;
  EXPECT_NE(refused.err.find("refused"), std::string::npos) << refused.err;
  // The node's certificate is of another CA than ours: we refuse it.
  RunResult distrust = RunProcess({CAIRN_BIN, "tail", dev, "--peer", Address("a"), "--ca",
                                   theirs[1], "--cert", theirs[3], "--key", theirs[5]},
                                  "", env_);
  EXPECT_NE(distrust.exit_code, 0);
  EXPECT_EQ(Lines(distrust.err), 1u) << distrust.err;
  EXPECT_NE(distrust.err.find("TLS handshake with " + Address("a") + " failed"),
            std::string::npos)
      << distrust.err;
}

TEST_F(TailPeerTest, UnreachablePeerAndUnknownDeviceAreNamed) {
  StartNode("a");
  const std::string nowhere = "127.0.0.1:" + std::to_string(FreePort());
  std::vector<std::string> args = {CAIRN_BIN, "tail", "x", "--peer", nowhere};
  for (auto& a : CliCert(ca_dir_, "cli")) args.push_back(a);
  RunResult unreachable = RunProcess(args, "", env_);
  EXPECT_NE(unreachable.exit_code, 0);
  EXPECT_EQ(Lines(unreachable.err), 1u) << unreachable.err;
  EXPECT_NE(unreachable.err.find("cannot reach " + nowhere), std::string::npos)
      << unreachable.err;
  RunResult unknown = PeerTail("a", {"nobody"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("does not store device 'nobody'"), std::string::npos)
      << unknown.err;
  RunResult no_cert =
      RunProcess({CAIRN_BIN, "tail", "x", "--peer", Address("a")}, "", env_);
  EXPECT_NE(no_cert.exit_code, 0);
  EXPECT_NE(no_cert.err.find("--ca, --cert and --key"), std::string::npos);
}

TEST_F(TailPeerTest, SecondSignalMakesCairndExitAtOnce) {
  StartNode("a");
  const std::string dev = DeviceOf("a");
  Append("a", Events(1, 1));
  // A subscriber that will not answer the close: shutdown waits for it.
  std::vector<std::string> argv = {CAIRN_BIN, "tail", dev, "--follow"};
  for (auto& a : PeerArgs("a")) argv.push_back(a);
  auto tail = FollowChild(argv, Data("stuck.out"));
  ASSERT_TRUE(Eventually([&] { return Lines(Slurp(Data("stuck.out"))) == 1; }));
  tail->Kill(SIGSTOP);
  Child& node = *nodes_["a"];
  node.Kill(SIGTERM);
  ASSERT_TRUE(Eventually(
      [&] { return Slurp(Data("a.log")).find("shutting down") != std::string::npos; }));
  node.Kill(SIGINT);
  EXPECT_EQ(node.Wait(5'000), 130) << Slurp(Data("a.log"));
  EXPECT_NE(Slurp(Data("a.log")).find("second signal, exiting now"), std::string::npos);
  tail->Kill(SIGCONT);
  EXPECT_NE(tail->Wait(10'000), 0);  // the node vanished under it
}

}  // namespace
}  // namespace cairn::testing
