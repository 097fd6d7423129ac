// Status: the outcome of an operation that can fail, with a code and a message.
//
// Cheap to copy when ok (no allocation). Named factories make call sites read as
// what went wrong: Status::Corruption("event 12 of d1: chain broken").
//
// Thread-safety: a Status is a value; distinct objects may be used from any thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace cairn {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kNotFound,
    kInvalidArgument,   // the caller's input is wrong; nothing changed
    kCorruption,        // stored or received data is damaged or forged
    kIOError,           // the operating system or LevelDB failed
    kPermissionDenied,  // e.g. append for a device whose key we do not hold
    kFailedPrecondition,
    kUnavailable,        // try again later (shutting down, busy)
    kResourceExhausted,  // a limit was hit
    kFork,               // two validly signed, different records for one seq
    kUnknownOutcome,     // the operation may or may not have happened
    kDiverged,           // records do not follow our head: a fork below them, or forged
    kGap,    // what was offered cannot be checked against what we hold: the events
             // between are gone (retention); nothing changed
    kStale,  // what was offered is held here already (a copy, or older): nothing to do
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status NotFound(std::string_view m) { return {Code::kNotFound, m}; }
  static Status InvalidArgument(std::string_view m) {
    return {Code::kInvalidArgument, m};
  }
  static Status Corruption(std::string_view m) { return {Code::kCorruption, m}; }
  static Status IOError(std::string_view m) { return {Code::kIOError, m}; }
  static Status PermissionDenied(std::string_view m) {
    return {Code::kPermissionDenied, m};
  }
  static Status FailedPrecondition(std::string_view m) {
    return {Code::kFailedPrecondition, m};
  }
  static Status Unavailable(std::string_view m) { return {Code::kUnavailable, m}; }
  static Status ResourceExhausted(std::string_view m) {
    return {Code::kResourceExhausted, m};
  }
  static Status Fork(std::string_view m) { return {Code::kFork, m}; }
  static Status UnknownOutcome(std::string_view m) { return {Code::kUnknownOutcome, m}; }
  static Status Diverged(std::string_view m) { return {Code::kDiverged, m}; }
  static Status Gap(std::string_view m) { return {Code::kGap, m}; }
  static Status Stale(std::string_view m) { return {Code::kStale, m}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }

  // "Corruption: event 12 of d1: chain broken"; "OK" when ok.
  std::string ToString() const;
  static const char* CodeName(Code code);

  // Returns a copy with `context + ": "` in front of the message.
  Status WithContext(std::string_view context) const;

 private:
  Status(Code code, std::string_view message) : code_(code), message_(message) {}
  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace cairn

// Returns early from the enclosing function when `expr` yields a non-ok Status.
#define CAIRN_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::cairn::Status cairn_status_ = (expr);        \
    if (!cairn_status_.ok()) return cairn_status_; \
  } while (0)
