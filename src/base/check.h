// CHECK(cond) << "context": aborts the process with file, line and message when an
// invariant that guards persisted or replicated data does not hold. Always on,
// including in release builds: a broken invariant must never reach the disk.
#pragma once

#include <sstream>

namespace cairn::internal {

class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return stream_; }

 private:
  std::ostringstream stream_;
};

// Lets `CHECK(x) << ...` compile to nothing when x holds.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace cairn::internal

#define CHECK(condition)               \
  (condition)                          \
      ? static_cast<void>(0)           \
      : ::cairn::internal::Voidify() & \
            ::cairn::internal::CheckFailure(__FILE__, __LINE__, #condition).stream()
