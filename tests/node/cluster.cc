#include "node/cluster.h"

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

namespace cairn::testing {

namespace fs = std::filesystem;
using nlohmann::json;

void ClusterTest::SetUp() {
  char tmpl[] = "/tmp/cairn-cluster-XXXXXX";
  root_ = mkdtemp(tmpl);
  env_ = {"CAIRN_DEV_CA=" + root_ + "/dev-ca"};
}

void ClusterTest::TearDown() {
  nodes_.clear();
  fs::remove_all(root_);
}

int ClusterTest::Port(const std::string& name) {
  if (!ports_.count(name)) ports_[name] = FreePort();
  return ports_[name];
}

void ClusterTest::StartNode(const std::string& name,
                            const std::vector<std::string>& peers,
                            const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {CAIRND_BIN,        "--dev",    "--data",
                                   Data(name),        "--listen", Address(name),
                                   "--peer-exchange", "off"};
  for (const auto& p : peers) {
    argv.push_back("--peer");
    argv.push_back(Address(p));
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  nodes_[name] = std::make_unique<Child>(argv, env_, Data(name) + ".log");
  ASSERT_TRUE(WaitForSocket(Data(name) + "/cairn.sock", *nodes_[name], 20'000))
      << Log(name);
}

RunResult ClusterTest::RunDaemon(const std::string& name,
                                 const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {CAIRND_BIN, "--dev",    "--data",
                                   Data(name), "--listen", Address(name)};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunProcess(argv, "", env_, 20'000);
}

int ClusterTest::StopNode(const std::string& name) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return -1;
  int code = it->second->Stop();
  nodes_.erase(it);
  return code;
}

void ClusterTest::KillNode(const std::string& name) {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return;
  it->second->Kill(SIGKILL);
  it->second->Wait(10'000);
  nodes_.erase(it);
}

bool ClusterTest::Running(const std::string& name) {
  auto it = nodes_.find(name);
  return it != nodes_.end() && it->second->Wait(0) == -1;
}

RunResult ClusterTest::Cli(const std::string& node, std::vector<std::string> args,
                           const std::string& input) {
  args.insert(args.begin(), {CAIRN_BIN, "--data", Data(node)});
  return RunProcess(args, input, env_, 30'000);
}

json ClusterTest::Status(const std::string& node) {
  RunResult r = Cli(node, {"status", "--json"});
  return r.exit_code == 0 ? json::parse(r.out, nullptr, false) : json();
}

uint64_t ClusterTest::Last(const std::string& node, const std::string& device) {
  json s = Status(node);
  if (!s.is_object() || !s.contains("devices")) return 0;
  for (const auto& d : s["devices"]) {
    if (d["device"] == device) return d["last"].get<uint64_t>();
  }
  return 0;
}

std::string ClusterTest::DeviceOf(const std::string& node) const {
  const std::string id = Slurp(Data(node) + "/dev-node-id");
  return id.substr(0, id.find('\n'));
}

std::vector<std::string> ClusterTest::DevCertFiles(const std::string& node) const {
  const std::string dir = root_ + "/dev-ca/";
  const std::string id = DeviceOf(node);
  return {dir + "ca.crt", dir + id + ".crt", dir + id + ".key"};
}

bool ClusterTest::Eventually(const std::function<bool()>& done, int timeout_ms) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

std::vector<json> JsonLines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(json::parse(line, nullptr, false));
  }
  return out;
}

}  // namespace cairn::testing
