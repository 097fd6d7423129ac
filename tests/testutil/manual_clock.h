// ManualClock: a Clock that moves only when the test says so.
// Thread-safety: safe from any thread.
#pragma once

#include <atomic>

#include "base/clock.h"

namespace cairn::testutil {

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t now_us = 1'700'000'000'000'000) : now_(now_us), mono_(0) {}
  int64_t NowMicros() override { return now_.load(); }
  int64_t MonotonicMicros() override { return mono_.load(); }
  void Advance(int64_t us) {
    now_ += us;
    mono_ += us;
  }
  // A wall-clock jump; the monotonic clock does not move.
  void SetWall(int64_t now_us) { now_ = now_us; }

 private:
  std::atomic<int64_t> now_;
  std::atomic<int64_t> mono_;
};

}  // namespace cairn::testutil
