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

// Every peer message through the discovery core and the sync engine, wired as
// the node wires them (fuzz_peer.cc). data[0] is a mode; then Envelope frames.
int FuzzPeerMessages(const uint8_t* data, size_t size);

// The control socket: a real ControlServer on a Unix socket reading the bytes
// as a client wrote them (fuzz_control.cc). data[0] is a mode.
int FuzzControl(const uint8_t* data, size_t size);

// The record verifier: Journal::Apply of Events frames against a replica holding
// a genuine prefix (fuzz_journal.cc). The property: it only ever stores genuine
// records and still verifies.
int FuzzRecords(const uint8_t* data, size_t size);

// The snapshot path: Snapshot frames through the sync engine's assembly into
// Journal::InstallSnapshot (fuzz_journal.cc). Same property as FuzzRecords.
int FuzzSnapshot(const uint8_t* data, size_t size);

// The entry named `target` ("frames", "channel", "messages", "control",
// "records", "snapshot"), or null (fuzz_targets.cc).
using FuzzEntry = int (*)(const uint8_t*, size_t);
FuzzEntry EntryNamed(const char* target);

}  // namespace cairn::fuzz
