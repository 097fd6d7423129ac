// Fuzz entry points, shared by the libFuzzer executables (CAIRN_FUZZ=ON, clang) and
// the always-on regression test (tests/fuzz/fuzz_regression_test.cc). Each takes
// arbitrary bytes, must never crash, leak or hang, and CHECKs its properties.
//
// Thread-safety: call from one thread at a time (FuzzChannel keeps one lazily built
// server Context).
#pragma once

#include <cstddef>
#include <cstdint>

namespace cairn::fuzz {

// The frame decoder and the Envelope parser, through tls::FrameReader. data[0] seeds
// how the rest is cut into pieces; the properties checked: pieces of any size give
// the same messages and the same error as one piece, and every decoded message
// re-serializes to bytes that parse back to the same message.
int FuzzFrames(const uint8_t* data, size_t size);

// The TLS core's input path: the bytes as what a client sent to a fresh server
// Channel. The property: it fails cleanly or waits for more, never opens (no
// handshake can complete without the client's key).
int FuzzChannel(const uint8_t* data, size_t size);

}  // namespace cairn::fuzz
