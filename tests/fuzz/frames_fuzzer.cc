// libFuzzer target: the frame decoder and Envelope parser (see fuzz_entries.h).
#include "fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return cairn::fuzz::FuzzFrames(data, size);
}
