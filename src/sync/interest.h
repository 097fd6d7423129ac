// Interest: which devices a node follows. A node stores only the devices it
// follows and those it is the source of; it tells its peers its interest, and
// they send it catalogue entries of those devices alone.
//
// Patterns:
//   "*"            every device (the default)
//   "ID"           one device
//   "GLOB"         device ids matching an fnmatch glob ("sensor-*", "door-[0-9]")
//   "group:NAME"   devices whose certificate names the group (subjectAltName URI
//                  "cairn-group:NAME"; see certs/make-device.sh --group)
// The empty interest follows nothing but the node's own devices.
//
// Matching is cheap whatever the number of patterns: ids and groups are looked
// up, and at most kMaxGlobs patterns are globs.
//
// Thread-safety: a value; const methods may be called from any thread.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace cairn::sync {

class Interest {
 public:
  static constexpr size_t kMaxPatterns = 1024;
  static constexpr size_t kMaxGlobs = 64;
  static constexpr size_t kMaxPatternBytes = 160;

  // Every device.
  Interest() : all_(true) {}
  static Interest All() { return Interest(); }
  static Interest None() { return Interest(std::set<std::string>{}); }
  // Checks every pattern (the error names the first bad one and why).
  static Result<Interest> Parse(const std::vector<std::string>& patterns);
  // One pattern's shape, for CLI arguments.
  static Status CheckPattern(std::string_view pattern);

  bool all() const { return all_; }
  // `groups`: the device's (any range of strings: its certificate's, or a
  // catalogue entry's claim).
  template <typename Groups>
  bool Matches(std::string_view device, const Groups& groups) const {
    if (all_ || ids_.count(std::string(device))) return true;
    if (!groups_.empty()) {
      for (const auto& g : groups) {
        if (groups_.count(g)) return true;
      }
    }
    return MatchesGlob(device);
  }
  bool Matches(std::string_view device) const {
    return Matches(device, std::vector<std::string>{});
  }
  // The pattern that matches `device` by id or glob ("*", the id, a glob), ""
  // when none does.
  std::string MatchedBy(std::string_view device) const;
  // Whether a device's match could depend on its groups (a "group:" pattern).
  bool has_groups() const { return !groups_.empty(); }
  // The patterns, sorted ("*" alone for every device).
  std::vector<std::string> patterns() const;
  // With `add` added or `remove` removed: FailedPrecondition naming a pattern to
  // remove that is not there (and the pattern that does match it, if one does).
  Result<Interest> With(const std::vector<std::string>& add) const;
  Result<Interest> Without(const std::vector<std::string>& remove) const;

  bool operator==(const Interest& o) const { return patterns() == o.patterns(); }

 private:
  explicit Interest(std::set<std::string> patterns);
  bool MatchesGlob(std::string_view device) const;

  bool all_ = false;
  std::set<std::string> ids_;
  std::vector<std::string> globs_;
  std::set<std::string> groups_;
};

// "a, b, c" (or "every device", or "none") for logs and status.
std::string Describe(const Interest& interest);

}  // namespace cairn::sync
