// Frame codec: every frame is a 4-byte big-endian length, then that many bytes of
// one serialized message. Pure: no sockets, no TLS, no allocation beyond the output.
//
// Decoding is incremental. DecodeFrame() looks at the bytes received so far and
// says whether they start with a complete frame, need more bytes, or can never
// become a valid frame (length over the limit) — the caller closes the
// connection with the returned reason in that last case.
//
// Thread-safety: free functions on caller-owned buffers; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace cairn::wire {

inline constexpr size_t kFrameHeaderBytes = 4;
// The default hard limit on one frame's payload: large enough for one 1 MiB
// snapshot chunk or one chunk of events with room to spare.
inline constexpr size_t kDefaultMaxFrameBytes = 4u << 20;
// Replies on the local control socket may be larger: the status of a node that
// stores 100,000 devices is about 15 MiB. Requests keep the default.
inline constexpr size_t kMaxControlReplyBytes = 64u << 20;

enum class DecodeState { kComplete, kNeedMore, kMalformed };

struct DecodeResult {
  DecodeState state;
  std::string_view payload;  // kComplete: the message bytes, a view into `input`
  size_t consumed = 0;       // kComplete: header + payload bytes to drop
  std::string reason;        // kMalformed: why
};

// Looks for one frame at the start of `input`. REQUIRES: max_frame_bytes > 0.
DecodeResult DecodeFrame(std::string_view input,
                         size_t max_frame_bytes = kDefaultMaxFrameBytes);

// Appends one frame holding `payload` to `out`. Fails, leaving `out` unchanged,
// when the payload exceeds `max_frame_bytes`.
Status EncodeFrame(std::string_view payload, std::string* out,
                   size_t max_frame_bytes = kDefaultMaxFrameBytes);

}  // namespace cairn::wire
