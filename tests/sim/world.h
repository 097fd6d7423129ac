// The simulator: many Cairn nodes in one process, on one thread, in simulated
// time, every choice drawn from one seed (TigerBeetle's VOPR and FoundationDB's
// simulator work this way). Each node is the code a cairnd runs: a real
// journal (LevelDB over SimEnv, an in-memory disk that loses what was not
// synced when the node crashes) and the sync Driver and Engine (the same code
// SyncNode runs on libuv). What the simulator replaces is the world around
// them: the network (connections with delays, in order on each, resets and
// partitions), the thread pool (journal work runs at a simulated disk delay),
// time, crashes, wiped disks, disk errors and clock jumps. A hostile node (a
// valid certificate) may relay forged events.
//
// It checks, as it runs and at the end:
//   - no acknowledged event is lost and no seq is acknowledged twice;
//   - an honest node never closes another honest node for breaking the protocol;
//   - every node reopens its journal after a crash;
//   - after the last fault heals, every node holds every device up to its
//     source's head within a bounded simulated time (a replica stalled by
//     retention is resynced as the README tells an operator to, and counted);
//   - then every stored chain verifies, every replica has the source's head hash
//     and KV view, and no fork was recorded;
//   - snapshot memory held stays within the engine's limits;
//   - something happened: events were acknowledged and delivered, faults given.
// A violation stops the run; the trace's last lines say what led to it.
//
// Thread-safety: one World per thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace cairn::sim {

struct Options {
  uint64_t seed = 1;
  int nodes = 5;
  int devices_per_node = 1;
  int64_t run_us = 30'000'000;     // workload and faults
  int64_t settle_us = 90'000'000;  // after the last fault healed, to converge
  bool faults = true;
  bool hostile = true;  // one node (not the first) forges what it relays
  size_t trace_tail = 60;
  bool trace_all = false;  // every trace line to stderr as it happens
};

struct Stats {
  uint64_t events = 0;         // simulation events run
  uint64_t appends_acked = 0;  // Append calls that returned ok
  uint64_t records_acked = 0;  // events in them
  uint64_t messages = 0;       // delivered
  uint64_t message_bytes = 0;  // delivered
  uint64_t faults = 0;         // resets, partitions, crashes, wipes, disk errors, jumps
  uint64_t crashes = 0;
  uint64_t forged = 0;       // events the hostile node altered
  uint64_t resyncs = 0;      // stalled replicas the operator resynced
  int64_t sim_us = 0;        // simulated time at the end
  int64_t converge_us = -1;  // after the last fault healed
  uint64_t trace_hash = 0;   // FNV-1a over every trace line
};

struct Outcome {
  bool ok = true;
  std::string violation;
  Stats stats;
  std::vector<std::string> trace_tail;  // the last lines before the end
};

Outcome Run(const Options& options);

}  // namespace cairn::sim
