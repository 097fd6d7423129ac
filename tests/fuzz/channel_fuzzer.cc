// libFuzzer target: bytes from a client into a fresh TLS server Channel.
#include "fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return cairn::fuzz::FuzzChannel(data, size);
}
