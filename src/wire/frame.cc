#include "wire/frame.h"

#include "base/bytes.h"

namespace cairn::wire {

DecodeResult DecodeFrame(std::string_view input, size_t max_frame_bytes) {
  DecodeResult r{DecodeState::kNeedMore, {}, 0, {}};
  uint32_t length;
  std::string_view cursor = input;
  if (!GetU32BE(&cursor, &length)) return r;
  if (length > max_frame_bytes) {
    r.state = DecodeState::kMalformed;
    r.reason = "frame of " + std::to_string(length) + " bytes exceeds the limit of " +
               std::to_string(max_frame_bytes);
    return r;
  }
  if (cursor.size() < length) return r;
  r.state = DecodeState::kComplete;
  r.payload = cursor.substr(0, length);
  r.consumed = kFrameHeaderBytes + length;
  return r;
}

Status EncodeFrame(std::string_view payload, std::string* out, size_t max_frame_bytes) {
  if (payload.size() > max_frame_bytes) {
    return Status::ResourceExhausted("message of " + std::to_string(payload.size()) +
                                     " bytes exceeds the frame limit of " +
                                     std::to_string(max_frame_bytes));
  }
  PutLengthPrefixed(out, payload);
  return Status::Ok();
}

}  // namespace cairn::wire
