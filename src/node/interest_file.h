// Where a node's interest (sync/interest.h) comes from: `cairn follow` and
// `cairn unfollow` store it in DATA/interest, one pattern per line, and it wins
// over --follow and the config file until `cairn follow --reset` removes it (a
// change made at run time survives a restart; a flag that no longer applies is
// named in the log).
//
// Thread-safety: plain functions; one caller at a time per data directory.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "sync/interest.h"

namespace cairn::node {

struct NodeInterest {
  sync::Interest interest;
  std::string origin;  // "default", "--follow / config", "cairn follow (PATH)"
};

std::string InterestPath(const std::string& data_dir);
// The stored interest when there is one, else `flags` ("*" when empty). A file
// that does not parse is an error naming its line.
Result<NodeInterest> LoadInterest(const std::string& data_dir,
                                  const std::vector<std::string>& flags);
// Written whole to a temporary file, synced, renamed over the old one.
Status SaveInterest(const std::string& data_dir, const sync::Interest& interest);
Status RemoveInterest(const std::string& data_dir);

}  // namespace cairn::node
