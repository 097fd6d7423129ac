// FrameReader: turns the plaintext byte stream of one connection into Envelopes.
// Bytes go in as they arrive, in pieces of any size; complete frames come out one at a
// time, each parsed into a wire::Envelope. Pure: no I/O, no TLS.
//
// Bounded: the reader holds at most one partial frame plus the last piece appended,
// because a frame over the limit is refused as soon as its 4-byte length is seen.
// The first frame has a limit of its own (the hello, sent before the peer is known
// to be a node: a connection that never says hello holds little).
// After an error the stream can never recover: close the connection with the reason.
//
// Thread-safety: none; one reader per connection, on that connection's thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "wire/frame.h"
#include "wire/schema.h"

namespace cairn::tls {

class FrameReader {
 public:
  // The most bytes one Append may add.
  static constexpr size_t kMaxAppendBytes = 64 << 10;

  // first_frame_bytes: the limit of the first frame (0: max_frame_bytes).
  explicit FrameReader(size_t max_frame_bytes = wire::kDefaultMaxFrameBytes,
                       size_t first_frame_bytes = 0);

  // Buffers plaintext. REQUIRES: bytes.size() <= kMaxAppendBytes, and Next() was
  // called until it returned no message since the previous Append.
  void Append(std::string_view bytes);

  // The next complete message; nullopt when more bytes are needed. Fails (and keeps
  // failing) when a frame exceeds the limit or its bytes are not an Envelope.
  Result<std::optional<wire::Envelope>> Next();

  // Plaintext held, waiting for the rest of a frame.
  size_t buffered_bytes() const { return buffer_.size() - pos_; }

 private:
  size_t max_frame_bytes_;
  size_t limit_;  // of the next frame: first_frame_bytes, then max_frame_bytes_
  bool first_ = true;
  std::string buffer_;
  size_t pos_ = 0;  // bytes of buffer_ already consumed
  Status error_;
};

}  // namespace cairn::tls
