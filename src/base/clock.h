// Clock: the one seam through which Cairn reads time, so that protocol cores and
// tests never read the real clock (tests drive a ManualClock instead).
//
// Thread-safety: implementations must be safe to call from any thread.
#pragma once

#include <cstdint>

namespace cairn {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time in microseconds since the Unix epoch (event times).
  virtual int64_t NowMicros() = 0;
  // Monotonic time in microseconds from an arbitrary origin (timeouts, intervals).
  virtual int64_t MonotonicMicros() = 0;
};

// The real clocks of the machine. The returned object lives forever.
Clock* SystemClock();

}  // namespace cairn
