#include <cstring>

#include "fuzz_entries.h"

namespace cairn::fuzz {

FuzzEntry EntryNamed(const char* target) {
  static const struct {
    const char* name;
    FuzzEntry entry;
  } kEntries[] = {
      {"frames", FuzzFrames},   {"channel", FuzzChannel}, {"messages", FuzzPeerMessages},
      {"control", FuzzControl}, {"records", FuzzRecords}, {"snapshot", FuzzSnapshot},
  };
  for (const auto& e : kEntries) {
    if (std::strcmp(e.name, target) == 0) return e.entry;
  }
  return nullptr;
}

}  // namespace cairn::fuzz
