// The pieces the peer benchmark clients share (tests/bench/peers): flags, the
// payload that carries its send time, a steady pacer, latency summaries, and the one
// JSON line of results each client prints for the run script to read.
//
// Thread-safety: none needed; every client is one thread of its own (the NATS
// library runs its own threads, which never call these).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::bench {

// `--name value` pairs after the sub-command. Unknown or malformed flags end the
// run with a message; Num and Str return the default when a flag is absent.
class Flags {
 public:
  Flags(int argc, char** argv, int first);
  std::string Str(const std::string& name, const std::string& def) const;
  uint64_t Num(const std::string& name, uint64_t def) const;
  // REQUIRES: every flag given was read by Str or Num before this call.
  void CheckAllUsed() const;

 private:
  std::map<std::string, std::string> values_;
  mutable std::map<std::string, bool> used_;
};

int64_t WallMicros();  // CLOCK_REALTIME, what the latency is measured in
int64_t MonoMicros();  // CLOCK_MONOTONIC, shared with the run script's clock

// A JSON object of exactly `size` bytes: {"t":SENT_US,"p":"xx..."}.
// REQUIRES: size >= kMinPayloadBytes.
constexpr size_t kMinPayloadBytes = 32;
std::string Payload(size_t size, int64_t sent_us);
// The SENT_US a Payload carries, or -1 when `payload` is not one.
int64_t SentMicros(std::string_view payload);

// Sleeps until event i is due at `per_second` from construction.
class Pacer {
 public:
  explicit Pacer(uint64_t per_second);
  void Wait(uint64_t i) const;

 private:
  int64_t start_us_;
  uint64_t per_second_;
};

// Delivery latencies in µs; Json gives {"n","p50_us","p99_us","max_us"}.
class Latencies {
 public:
  void Add(int64_t us) { us_.push_back(us); }
  size_t size() const { return us_.size(); }
  std::string Json();

 private:
  std::vector<int64_t> us_;
};

// Prints one line to stdout and flushes it (the run script reads it at once).
void PrintLine(const std::string& line);
[[noreturn]] void Die(const std::string& message);

// One sub-command of a client: `PROGRAM NAME --flag value ...`.
struct Command {
  const char* name;
  int (*run)(const Flags& flags);
};
// Runs the command named by argv[1] with the flags after it; an unknown one ends
// the run with the usage line listing `commands`.
int RunCommand(int argc, char** argv, const char* program,
               std::initializer_list<Command> commands);

}  // namespace cairn::bench
