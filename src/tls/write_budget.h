// WriteBudget: the back-pressure arithmetic of one connection's write queue. Counts
// bytes handed to the socket and not yet written; reports the moment the count
// crosses the high-water mark (pause senders) and the moment it falls back to the
// low-water mark (resume them), and refuses what would pass the hard limit.
//
// Thread-safety: none; owned by one connection.
#pragma once

#include <cstddef>

#include "base/check.h"

namespace cairn::tls {

class WriteBudget {
 public:
  // REQUIRES: low_water <= high_water <= limit.
  WriteBudget(size_t high_water, size_t low_water, size_t limit)
      : high_water_(high_water), low_water_(low_water), limit_(limit) {
    CHECK(low_water <= high_water && high_water <= limit);
  }

  // Would queueing `bytes` more stay within the hard limit?
  bool Fits(size_t bytes) const { return bytes <= limit_ && queued_ <= limit_ - bytes; }

  // Counts `bytes` queued; true when this crossed the high-water mark.
  bool Add(size_t bytes) {
    queued_ += bytes;
    if (paused_ || queued_ <= high_water_) return false;
    paused_ = true;
    return true;
  }

  // Counts `bytes` written; true when this drained a paused queue to low water.
  // REQUIRES: bytes <= queued().
  bool Remove(size_t bytes) {
    CHECK(bytes <= queued_);
    queued_ -= bytes;
    if (!paused_ || queued_ > low_water_) return false;
    paused_ = false;
    return true;
  }

  size_t queued() const { return queued_; }
  bool above_high_water() const { return paused_; }

 private:
  size_t high_water_;
  size_t low_water_;
  size_t limit_;
  size_t queued_ = 0;
  bool paused_ = false;
};

}  // namespace cairn::tls
