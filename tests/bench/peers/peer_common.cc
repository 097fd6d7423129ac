#include "peer_common.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace cairn::bench {
namespace {

int64_t Micros(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

constexpr std::string_view kHead = "{\"t\":";
constexpr size_t kTimeDigits = 16;
constexpr std::string_view kMid = ",\"p\":\"";

}  // namespace

Flags::Flags(int argc, char** argv, int first) {
  for (int i = first; i < argc; i += 2) {
    std::string name = argv[i];
    if (name.rfind("--", 0) != 0 || i + 1 >= argc) Die("bad flag: " + name);
    values_[name.substr(2)] = argv[i + 1];
  }
}

std::string Flags::Str(const std::string& name, const std::string& def) const {
  used_[name] = true;
  auto it = values_.find(name);
  return it == values_.end() ? def : it->second;
}

uint64_t Flags::Num(const std::string& name, uint64_t def) const {
  std::string s = Str(name, "");
  if (s.empty()) return def;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (*end != '\0') Die("--" + name + " needs a number, not " + s);
  return v;
}

void Flags::CheckAllUsed() const {
  for (const auto& [name, value] : values_) {
    if (!used_.count(name)) Die("unknown flag --" + name);
  }
}

int64_t WallMicros() { return Micros(CLOCK_REALTIME); }
int64_t MonoMicros() { return Micros(CLOCK_MONOTONIC); }

std::string Payload(size_t size, int64_t sent_us) {
  if (size < kMinPayloadBytes) Die("payloads must be at least 32 bytes");
  char t[kTimeDigits + 1];
  std::snprintf(t, sizeof t, "%016lld", static_cast<long long>(sent_us));
  std::string p;
  p.reserve(size);
  p.append(kHead).append(t, kTimeDigits).append(kMid);
  p.append(size - p.size() - 2, 'x');
  p.append("\"}");
  return p;
}

int64_t SentMicros(std::string_view payload) {
  if (payload.size() < kHead.size() + kTimeDigits ||
      payload.substr(0, kHead.size()) != kHead) {
    return -1;
  }
  int64_t v = 0;
  for (char c : payload.substr(kHead.size(), kTimeDigits)) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v;
}

Pacer::Pacer(uint64_t per_second) : start_us_(MonoMicros()), per_second_(per_second) {
  if (per_second == 0) Die("--rate must be at least 1");
}

void Pacer::Wait(uint64_t i) const {
  const int64_t due = start_us_ + static_cast<int64_t>(i * 1000000 / per_second_);
  for (int64_t now = MonoMicros(); now < due; now = MonoMicros()) {
    timespec ts{0, static_cast<long>((due - now) * 1000)};
    nanosleep(&ts, nullptr);
  }
}

std::string Latencies::Json() {
  if (us_.empty()) return "{\"n\":0}";
  std::sort(us_.begin(), us_.end());
  auto at = [&](double q) {
    return static_cast<long long>(us_[static_cast<size_t>(q * (us_.size() - 1))]);
  };
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "{\"n\":%zu,\"p50_us\":%lld,\"p99_us\":%lld,\"max_us\":%lld}", us_.size(),
                at(0.5), at(0.99), static_cast<long long>(us_.back()));
  return buf;
}

void PrintLine(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void Die(const std::string& message) {
  std::fprintf(stderr, "peer bench: %s\n", message.c_str());
  std::exit(1);
}

int RunCommand(int argc, char** argv, const char* program,
               std::initializer_list<Command> commands) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  const Flags flags(argc, argv, 2);
  std::string names;
  for (const Command& c : commands) {
    if (cmd == c.name) return c.run(flags);
    names += (names.empty() ? "" : "|") + std::string(c.name);
  }
  Die(std::string("usage: ") + program + " " + names +
      " --flag value ... (see the source)");
}

}  // namespace cairn::bench
