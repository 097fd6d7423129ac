// Planner: for every device this node follows, which peer to subscribe through.
// Pure: catalogues in, a device -> peer map out.
//
// The rule (DESIGN.md, sync): the source itself when connected; otherwise the peer
// with the highest `last`, ties broken by lower round-trip time, then by the
// smaller node id so that every run decides the same way. A current choice is kept
// unless the source has appeared, it holds nothing we lack while another peer does,
// another peer is ahead of it by more than `switch_margin` events, or another peer at
// least as far ahead answers in under half the current one's round-trip time and at least
// `rtt_switch_min_us` sooner (a first choice is often made before round-trip times are
// known). These margins keep subscriptions from flapping between near-equal peers.
// Devices this node is the source of are never planned.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "wire/schema.h"

namespace cairn::sync {

struct PeerCatalogue {
  std::map<std::string, wire::CatalogueEntry> entries;  // by device
  int64_t rtt_us = 0;                                   // 0: unknown
};

// What the plan reads of a catalogue entry (a full replan of 10,000 devices and
// 8 peers copies these, not 80,000 entries with their hashes and groups).
struct Offer {
  uint64_t last = 0;
  bool source = false;
};
inline Offer OfferOf(const wire::CatalogueEntry& e) { return {e.last(), e.source()}; }

struct PeerOffers {
  std::map<std::string, Offer> offers;  // by device
  int64_t rtt_us = 0;                   // 0: unknown
};

struct PlanInput {
  std::map<std::string, Offer> local;          // our own catalogue
  std::map<std::string, PeerOffers> peers;     // active peers only
  std::map<std::string, std::string> current;  // device -> peer now
  uint64_t switch_margin = 64;
  int64_t rtt_switch_min_us = 1000;
};

// device -> the peer to follow it through.
std::map<std::string, std::string> Plan(const PlanInput& in);

}  // namespace cairn::sync
