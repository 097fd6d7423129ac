#include "sync/interest.h"

#include <fnmatch.h>

#include <algorithm>

#include "journal/identity.h"

namespace cairn::sync {
namespace {

constexpr std::string_view kGroupPrefix = "group:";

bool IsGlob(std::string_view p) {
  return p.find_first_of("*?[") != std::string_view::npos;
}

bool GroupNameOk(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

}  // namespace

Status Interest::CheckPattern(std::string_view p) {
  const std::string quoted = "'" + std::string(p.substr(0, kMaxPatternBytes)) + "'";
  if (p.empty()) return Status::InvalidArgument("an empty pattern");
  if (p.size() > kMaxPatternBytes) {
    return Status::InvalidArgument("pattern " + quoted + "… is longer than " +
                                   std::to_string(kMaxPatternBytes) + " bytes");
  }
  if (p == "*") return Status::Ok();
  if (p.starts_with(kGroupPrefix)) {
    if (!GroupNameOk(p.substr(kGroupPrefix.size()))) {
      return Status::InvalidArgument("pattern " + quoted +
                                     ": a group name is 1 to 64 of [A-Za-z0-9._-]");
    }
    return Status::Ok();
  }
  if (!IsGlob(p)) {
    Status s = journal::ValidateDeviceId(p);
    return s.ok() ? s : Status::InvalidArgument("pattern " + quoted + ": " + s.message());
  }
  for (char c : p) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') ||
              std::string_view("._:@-*?[]!").find(c) != std::string_view::npos;
    if (!ok) {
      return Status::InvalidArgument("pattern " + quoted +
                                     " has a character outside device ids "
                                     "[A-Za-z0-9._:@-] and globs *?[]!");
    }
  }
  if (std::count(p.begin(), p.end(), '[') != std::count(p.begin(), p.end(), ']')) {
    return Status::InvalidArgument("pattern " + quoted + " has an unclosed [");
  }
  return Status::Ok();
}

Interest::Interest(std::set<std::string> patterns) {
  for (auto& p : patterns) {
    if (p == "*") {
      all_ = true;
    } else if (p.starts_with(kGroupPrefix)) {
      groups_.insert(p.substr(kGroupPrefix.size()));
    } else if (IsGlob(p)) {
      globs_.push_back(p);
    } else {
      ids_.insert(p);
    }
  }
  if (all_) {
    ids_.clear();
    globs_.clear();
    groups_.clear();
  }
}

Result<Interest> Interest::Parse(const std::vector<std::string>& patterns) {
  if (patterns.size() > kMaxPatterns) {
    return Status::InvalidArgument(std::to_string(patterns.size()) +
                                   " patterns; at most " + std::to_string(kMaxPatterns));
  }
  std::set<std::string> set;
  size_t globs = 0;
  for (const auto& p : patterns) {
    CAIRN_RETURN_IF_ERROR(CheckPattern(p));
    if (set.insert(p).second && p != "*" && !p.starts_with(kGroupPrefix) && IsGlob(p))
      ++globs;
  }
  if (globs > kMaxGlobs) {
    return Status::InvalidArgument(std::to_string(globs) + " glob patterns; at most " +
                                   std::to_string(kMaxGlobs) +
                                   " (name devices one by one, or by group)");
  }
  return Interest(std::move(set));
}

bool Interest::MatchesGlob(std::string_view device) const {
  if (globs_.empty()) return false;
  const std::string d(device);
  for (const auto& glob : globs_) {
    if (fnmatch(glob.c_str(), d.c_str(), 0) == 0) return true;
  }
  return false;
}

std::string Interest::MatchedBy(std::string_view device) const {
  if (all_) return "*";
  if (ids_.count(std::string(device))) return std::string(device);
  const std::string d(device);
  for (const auto& glob : globs_) {
    if (fnmatch(glob.c_str(), d.c_str(), 0) == 0) return glob;
  }
  return "";
}

std::vector<std::string> Interest::patterns() const {
  if (all_) return {"*"};
  std::set<std::string> out(ids_.begin(), ids_.end());
  out.insert(globs_.begin(), globs_.end());
  for (const auto& g : groups_) out.insert(std::string(kGroupPrefix) + g);
  return {out.begin(), out.end()};
}

Result<Interest> Interest::With(const std::vector<std::string>& add) const {
  std::vector<std::string> p = patterns();
  p.insert(p.end(), add.begin(), add.end());
  return Parse(p);
}

Result<Interest> Interest::Without(const std::vector<std::string>& remove) const {
  std::vector<std::string> p = patterns();
  for (const auto& r : remove) {
    auto it = std::find(p.begin(), p.end(), r);
    if (it != p.end()) {
      p.erase(it);
      continue;
    }
    std::string why = "'" + r + "' is not followed as a pattern";
    if (const std::string by = MatchedBy(r); !by.empty()) {
      why += " (pattern '" + by + "' matches it: `cairn follow --only PATTERN...` " +
             "replaces the interest at once)";
    }
    return Status::FailedPrecondition(why + "; the interest is " + Describe(*this));
  }
  return Parse(p);
}

std::string Describe(const Interest& interest) {
  if (interest.all()) return "every device (*)";
  std::vector<std::string> p = interest.patterns();
  if (p.empty()) return "none (only this node's own devices)";
  std::string out;
  for (const auto& s : p) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace cairn::sync
