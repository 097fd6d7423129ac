// cairn_sim: runs the simulator (world.h) over many seeds, or one seed again.
//
//   cairn_sim --seeds 200 --nodes 5-20      seeds 1..200, a node count per seed
//   cairn_sim --seed 1234 --nodes 12        one run again, its trace hash printed
//   cairn_sim --plant NAME --seeds 300      with a planted bug: exits non-zero at
//                                           the first seed that finds it
//   cairn_sim --list-plants
//
// Exit status: 0 when every run held every invariant, 1 at the first violation
// (its seed and the trace before it are printed), 2 for bad arguments.
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "base/plant.h"
#include "base/rng.h"
#include "sim/world.h"

namespace {

int Usage(const char* why) {
  std::fprintf(
      stderr,
      "cairn_sim: %s\n"
      "usage: cairn_sim [--seed S | --seeds N [--first F]] [--nodes M | LO-HI]\n"
      "                 [--devices D] [--run-s S] [--settle-s S] [--no-faults]\n"
      "                 [--no-hostile] [--plant NAME] [--list-plants] [--trace]\n",
      why);
  return 2;
}

bool ParseU64(const char* text, uint64_t* out) {
  if (text == nullptr || *text == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-') return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t first = 1;
  uint64_t seeds = 1;
  bool one = false;
  uint64_t nodes_lo = 5;
  uint64_t nodes_hi = 5;
  std::string plant;
  cairn::sim::Options base;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    uint64_t v = 0;
    if (arg == "--list-plants") {
      for (const auto& [name, what] : cairn::plant::All())
        std::printf("%-24s %s\n", name.c_str(), what.c_str());
      if (!cairn::plant::kCompiledIn)
        std::printf("(not compiled into this build: configure with -DCAIRN_PLANTS=ON)\n");
      return 0;
    } else if (arg == "--seed" && ParseU64(value, &v)) {
      first = v;
      seeds = 1;
      one = true;
    } else if (arg == "--seeds" && ParseU64(value, &v) && v > 0) {
      seeds = v;
    } else if (arg == "--first" && ParseU64(value, &v)) {
      first = v;
    } else if (arg == "--nodes" && value != nullptr) {
      const char* dash = std::strchr(value, '-');
      std::string lo(value,
                     dash ? static_cast<size_t>(dash - value) : std::strlen(value));
      if (!ParseU64(lo.c_str(), &nodes_lo) ||
          !ParseU64(dash ? dash + 1 : lo.c_str(), &nodes_hi) || nodes_lo < 2 ||
          nodes_hi < nodes_lo || nodes_hi > 1000) {
        return Usage("--nodes takes N or LO-HI, 2 to 1000");
      }
    } else if (arg == "--devices" && ParseU64(value, &v) && v > 0 && v <= 100) {
      base.devices_per_node = static_cast<int>(v);
    } else if (arg == "--run-s" && ParseU64(value, &v) && v > 0) {
      base.run_us = static_cast<int64_t>(v) * 1'000'000;
    } else if (arg == "--settle-s" && ParseU64(value, &v) && v > 0) {
      base.settle_us = static_cast<int64_t>(v) * 1'000'000;
    } else if (arg == "--plant" && value != nullptr) {
      plant = value;
    } else if (arg == "--no-faults") {
      base.faults = false;
      continue;
    } else if (arg == "--no-hostile") {
      base.hostile = false;
      continue;
    } else if (arg == "--trace") {
      base.trace_all = true;
      continue;
    } else {
      return Usage(("bad argument: " + arg).c_str());
    }
    ++i;  // the value
  }
  if (!plant.empty()) {
    if (!cairn::plant::kCompiledIn) {
      std::fprintf(stderr, "cairn_sim: plants are not compiled into this build\n");
      return 2;
    }
    if (!cairn::plant::Set(plant)) return Usage(("no plant named " + plant).c_str());
  }

  const auto start = std::chrono::steady_clock::now();
  uint64_t events = 0;
  uint64_t resyncs = 0;
  uint64_t runs_resynced = 0;
  double sim_s = 0;
  for (uint64_t seed = first; seed < first + seeds; ++seed) {
    cairn::sim::Options o = base;
    o.seed = seed;
    // The node count is drawn from the seed too: a seed replays alone.
    cairn::Rng pick(seed ^ 0x9e3779b97f4a7c15ull);
    o.nodes = static_cast<int>(nodes_lo + pick.Uniform(nodes_hi - nodes_lo + 1));
    const cairn::sim::Outcome out = cairn::sim::Run(o);
    events += out.stats.events;
    resyncs += out.stats.resyncs;
    runs_resynced += out.stats.resyncs > 0 ? 1 : 0;
    sim_s += static_cast<double>(out.stats.sim_us) / 1e6;
    if (one || !out.ok) {
      std::printf("seed %" PRIu64 " nodes %d: %s\n", seed, o.nodes,
                  out.ok ? "ok" : ("VIOLATION: " + out.violation).c_str());
      std::printf("  trace hash %016" PRIx64 ", %" PRIu64 " events, %" PRIu64
                  " appends (%" PRIu64 " events) acknowledged, %" PRIu64
                  " messages, %" PRIu64 " faults (%" PRIu64 " crashes), %" PRIu64
                  " forged, %" PRIu64 " resyncs, converged %.1f s after the last fault\n",
                  out.stats.trace_hash, out.stats.events, out.stats.appends_acked,
                  out.stats.records_acked, out.stats.messages, out.stats.faults,
                  out.stats.crashes, out.stats.forged, out.stats.resyncs,
                  static_cast<double>(out.stats.converge_us) / 1e6);
    }
    if (!out.ok) {
      std::printf("  the last %zu trace lines:\n", out.trace_tail.size());
      for (const auto& line : out.trace_tail) std::printf("    %s\n", line.c_str());
      std::printf("replay: tests/sim/run --seed %" PRIu64 " --nodes %d%s%s\n", seed,
                  o.nodes, plant.empty() ? "" : " --plant ", plant.c_str());
      return 1;
    }
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%" PRIu64 " seeds ok (%" PRIu64 "..%" PRIu64
              "): %.0f simulated s in %.1f wall s, %.0f events per wall s; %" PRIu64
              " stalled replicas resynced in %" PRIu64 " runs\n",
              seeds, first, first + seeds - 1, sim_s, wall,
              static_cast<double>(events) / wall, resyncs, runs_resynced);
  return 0;
}
