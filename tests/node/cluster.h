// Named real cairnd processes for the node tests: each on a temporary data
// directory (under one root, removed at the end), a loopback port kept across
// restarts, one per-test development CA, and the cairn CLI pointed at any of them.
//
// Thread-safety: test thread only.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "node/process.h"

namespace cairn::testing {

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;  // SIGKILLs what still runs, removes the root

  std::string Data(const std::string& name) const { return root_ + "/" + name; }
  int Port(const std::string& name);
  std::string Address(const std::string& name) {
    return "127.0.0.1:" + std::to_string(Port(name));
  }

  // Starts `name` with --dev, peer exchange off, --peer for each of `peers`, and
  // `extra` flags; waits for its control socket (a failed start fails the test).
  void StartNode(const std::string& name, const std::vector<std::string>& peers = {},
                 const std::vector<std::string>& extra = {});
  // Runs cairnd with --dev on `name`'s data directory until it exits (start-up
  // errors).
  RunResult RunDaemon(const std::string& name, const std::vector<std::string>& extra);
  // SIGTERM and wait; the exit code.
  int StopNode(const std::string& name);
  void KillNode(const std::string& name);  // SIGKILL and wait
  bool Running(const std::string& name);

  RunResult Cli(const std::string& node, std::vector<std::string> args,
                const std::string& input = "");
  nlohmann::json Status(const std::string& node);
  // `device`'s head at `node` (0 when absent or the node does not answer).
  uint64_t Last(const std::string& node, const std::string& device);
  // The device a --dev node is the source of.
  std::string DeviceOf(const std::string& node) const;
  std::string Log(const std::string& node) const { return Slurp(Data(node) + ".log"); }
  // The dev CA's files for `node` (ca, cert, key), once it has started once.
  std::vector<std::string> DevCertFiles(const std::string& node) const;

  // Polls every 50 ms (bounded by timeout_ms) until `done` holds.
  static bool Eventually(const std::function<bool()>& done, int timeout_ms = 60'000);

  std::string root_;
  std::vector<std::string> env_;
  std::map<std::string, int> ports_;
  std::map<std::string, std::unique_ptr<Child>> nodes_;
};

// One JSON document per line of `text`.
std::vector<nlohmann::json> JsonLines(const std::string& text);

}  // namespace cairn::testing
