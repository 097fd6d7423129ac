// libFuzzer target for the entry named by CAIRN_FUZZ_TARGET (see CMakeLists.txt).
#include "fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const cairn::fuzz::FuzzEntry entry = cairn::fuzz::EntryNamed(CAIRN_FUZZ_TARGET);
  return entry(data, size);
}
