#include "tls/frame_reader.h"

#include <algorithm>

#include "base/check.h"

namespace cairn::tls {

FrameReader::FrameReader(size_t max_frame_bytes, size_t first_frame_bytes)
    : max_frame_bytes_(max_frame_bytes),
      limit_(first_frame_bytes == 0 ? max_frame_bytes
                                    : std::min(first_frame_bytes, max_frame_bytes)) {
  CHECK(max_frame_bytes_ > 0);
}

void FrameReader::Append(std::string_view bytes) {
  CHECK(bytes.size() <= kMaxAppendBytes) << bytes.size();
  if (!error_.ok()) return;
  if (pos_ > 0) {  // drop consumed frames before growing
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  CHECK(buffer_.size() <= wire::kFrameHeaderBytes + max_frame_bytes_ + kMaxAppendBytes)
      << "FrameReader: Append without draining Next()";
  buffer_.append(bytes);
}

Result<std::optional<wire::Envelope>> FrameReader::Next() {
  if (!error_.ok()) return error_;
  std::string_view rest = std::string_view(buffer_).substr(pos_);
  wire::DecodeResult frame = wire::DecodeFrame(rest, limit_);
  if (frame.state == wire::DecodeState::kNeedMore) {
    return std::optional<wire::Envelope>();
  }
  if (frame.state == wire::DecodeState::kMalformed) {
    error_ = Status::Corruption(first_ && limit_ < max_frame_bytes_
                                    ? frame.reason + " of the first frame (the hello)"
                                    : frame.reason);
    return error_;
  }
  std::optional<wire::Envelope> message(std::in_place);
  if (!message->ParseFromArray(frame.payload.data(),
                               static_cast<int>(frame.payload.size()))) {
    error_ = Status::Corruption("undecodable message in a frame of " +
                                std::to_string(frame.payload.size()) + " bytes");
    return error_;
  }
  pos_ += frame.consumed;
  first_ = false;
  limit_ = max_frame_bytes_;
  if (pos_ == buffer_.size()) {
    // Give back the memory of a large frame; small buffers are kept for reuse.
    if (buffer_.capacity() > kMaxAppendBytes * 4) buffer_ = std::string();
    buffer_.clear();
    pos_ = 0;
  }
  return message;
}

}  // namespace cairn::tls
