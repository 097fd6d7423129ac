// Log: the daemon's one logger. Lines go to standard error as
//   2024-05-01T12:00:00.123Z INFO  control: listening on data/cairn.sock
// Levels below the configured one are dropped.
//
// Thread-safety: every function may be called from any thread; lines never
// interleave.
#pragma once

#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace cairn::node {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn", "error"; nullopt for anything else.
std::optional<LogLevel> ParseLogLevel(std::string_view name);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view message);

// LOG(kInfo) << "listening on " << path;
class LogMessage {
 public:
  explicit LogMessage(LogLevel level) : level_(level) {}
  ~LogMessage() { LogLine(level_, stream_.str()); }
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace cairn::node

// A one-pass loop rather than if/else, so that `if (x) CAIRN_LOG(...) << ...;` is
// never a dangling else.
#define CAIRN_LOG(level)                                                               \
  for (bool cairn_log_on_ = ::cairn::node::LogEnabled(::cairn::node::LogLevel::level); \
       cairn_log_on_; cairn_log_on_ = false)                                           \
  ::cairn::node::LogMessage(::cairn::node::LogLevel::level).stream()
