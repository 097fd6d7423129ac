// The file descriptors of one cairnd: raised to the hard limit at start, then
// shared out so that no peer can make LevelDB or the control socket run out.
// At the common limit of 1,024 a flood of connections used to take every fd:
// LevelDB failed with "Too many open files", the control socket died and honest
// peers were blamed. Now peer connections are capped at what is left once
// LevelDB's table cache, the control socket's clients and a reserve (logs, DNS,
// dev-cert scripts, the LevelDB log and manifest) are set aside.
//
// Thread-safety: call once, on the main thread, before any other thread starts.
#pragma once

#include <cstddef>
#include <string>

#include "base/result.h"

namespace cairn::node {

struct FdBudget {
  size_t limit = 0;            // RLIMIT_NOFILE's soft limit, after raising
  size_t raised_from = 0;      // the soft limit we found
  size_t leveldb = 0;          // LevelDB max_open_files (it opens a few more: reserve)
  size_t control_clients = 0;  // control socket clients at once
  size_t reserve = 0;          // LevelDB's log, manifest and lock, logs, DNS, scripts
  size_t connections = 0;      // peer connections, accepted + outgoing + handshakes
  std::string Describe() const;
};

// The smallest soft limit cairnd starts with: below it, too few peers fit.
inline constexpr size_t kMinFdLimit = 256;

// Raises RLIMIT_NOFILE's soft limit to its hard limit (at most 65,536: libuv
// sizes arrays by the highest fd) and shares it out. InvalidArgument below
// kMinFdLimit.
Result<FdBudget> RaiseAndShareFds();

// The share-out alone, for a given limit >= kMinFdLimit (pure): LevelDB a
// quarter (64 to 1,000), control clients an eighth (16 to 256), 64 + 16 in
// reserve, peer connections the rest (at least 78 at the minimum limit).
FdBudget ShareFds(size_t limit);

}  // namespace cairn::node
