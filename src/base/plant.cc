#include "base/plant.h"

#include <atomic>

namespace cairn::plant {

const std::vector<std::pair<std::string, std::string>>& All() {
  static const std::vector<std::pair<std::string, std::string>> all = {
      {"ack-before-durable",
       "appends are acknowledged before their batch is synced (journal writer)"},
      {"skip-chain-check",
       "applied records are stored without checking their hash chain and signatures"},
      {"catchup-off-by-one", "a follow subscribes from its head + 2, not + 1 (engine)"},
      {"release-guard-at-once",
       "the restore guard releases a restored source before peers told its head"},
      {"ignore-credit",
       "a served subscription sends past the credit its subscriber granted"},
  };
  return all;
}

#ifdef CAIRN_PLANTS
namespace {
std::atomic<int> active{-1};
}

bool On(std::string_view name) {
  const int i = active.load(std::memory_order_relaxed);
  return i >= 0 && All()[static_cast<size_t>(i)].first == name;
}

bool Set(std::string_view name) {
  if (name.empty()) {
    active = -1;
    return true;
  }
  for (size_t i = 0; i < All().size(); ++i) {
    if (All()[i].first == name) {
      active = static_cast<int>(i);
      return true;
    }
  }
  return false;
}
#endif

}  // namespace cairn::plant
