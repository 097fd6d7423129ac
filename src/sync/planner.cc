#include "sync/planner.h"

#include <tuple>

namespace cairn::sync {
namespace {

struct Candidate {
  const std::string* peer = nullptr;
  const Offer* entry = nullptr;
  int64_t rtt_us = 0;
};

// True when a is a better peer than b for the same device.
bool Better(const Candidate& a, const Candidate& b) {
  if (a.entry->source != b.entry->source) return a.entry->source;
  if (a.entry->last != b.entry->last) return a.entry->last > b.entry->last;
  // Unknown round-trip times sort last.
  const int64_t ra = a.rtt_us > 0 ? a.rtt_us : INT64_MAX;
  const int64_t rb = b.rtt_us > 0 ? b.rtt_us : INT64_MAX;
  if (ra != rb) return ra < rb;
  return *a.peer < *b.peer;
}

// Whether to leave the current choice for `best` (which ranks at least as high);
// `ours`: the last seq we hold.
bool Switch(const Candidate& current, const Candidate& best, const PlanInput& in,
            uint64_t ours) {
  if (best.entry->source && !current.entry->source) return true;
  // The current peer holds nothing we lack and another does: the margin is for
  // peers both ahead of us, not for one that can send nothing (two relays each
  // following the device through the other would wait for each other forever).
  if (current.entry->last <= ours && best.entry->last > ours) return true;
  if (best.entry->last > current.entry->last + in.switch_margin) return true;
  if (current.entry->source && !best.entry->source) return false;
  if (best.entry->last < current.entry->last || best.rtt_us <= 0) return false;
  if (current.rtt_us <= 0) return false;
  return 2 * best.rtt_us < current.rtt_us &&
         current.rtt_us - best.rtt_us >= in.rtt_switch_min_us;
}

}  // namespace

std::map<std::string, std::string> Plan(const PlanInput& in) {
  std::map<std::string, std::vector<Candidate>> by_device;
  for (const auto& [peer, cat] : in.peers) {
    for (const auto& [device, entry] : cat.offers) {
      auto local = in.local.find(device);
      if (local != in.local.end() && local->second.source) continue;
      by_device[device].push_back({&peer, &entry, cat.rtt_us});
    }
  }
  std::map<std::string, std::string> plan;
  for (const auto& [device, candidates] : by_device) {
    const Candidate* best = &candidates.front();
    const Candidate* current = nullptr;
    auto cur = in.current.find(device);
    for (const auto& c : candidates) {
      if (Better(c, *best)) best = &c;
      if (cur != in.current.end() && *c.peer == cur->second) current = &c;
    }
    auto local = in.local.find(device);
    const uint64_t ours = local == in.local.end() ? 0 : local->second.last;
    const bool keep = current != nullptr && !Switch(*current, *best, in, ours);
    plan[device] = keep ? *current->peer : *best->peer;
  }
  return plan;
}

}  // namespace cairn::sync
