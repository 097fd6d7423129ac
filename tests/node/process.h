// Child processes for the node tests: run a command to completion with a
// deadline, or keep a cairnd running and stop it. Every child is killed by the
// time its owner is gone, also when a test fails.
//
// Thread-safety: test thread only.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace cairn::testing {

struct RunResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out;
  std::string err;
  bool timed_out = false;
};

// Runs argv with `input` on stdin and extra environment `env` ("K=V"); kills it
// after timeout_ms.
RunResult RunProcess(const std::vector<std::string>& argv, const std::string& input = "",
                     const std::vector<std::string>& env = {}, int timeout_ms = 10'000);

// A background process whose stderr goes to a file.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::vector<std::string>& env,
        const std::string& stderr_path, const std::string& stdout_path = "/dev/null",
        const std::string& stdin_path = "/dev/null");
  ~Child();  // SIGKILL if still running
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  void Kill(int signum);
  // Waits up to timeout_ms for it to exit; returns its exit code, -1 on timeout.
  int Wait(int timeout_ms);
  // SIGTERM, then Wait; SIGKILL on timeout.
  int Stop(int timeout_ms = 10'000);

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

// Polls until a Unix socket at `path` accepts a connection, or `child` exits, or
// the deadline passes. True when it accepts.
bool WaitForSocket(const std::string& path, Child& child, int timeout_ms);

// The whole text of a file ("" when it cannot be read).
std::string Slurp(const std::string& path);

// A loopback TCP port that was free a moment ago (bound, read, closed).
int FreePort();

}  // namespace cairn::testing
