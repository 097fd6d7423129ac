#include "node/fd_budget.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cairn::node {

namespace {
constexpr size_t kMaxFdLimit = 65536;
constexpr size_t kReserve = 64;
}  // namespace

FdBudget ShareFds(size_t limit) {
  FdBudget b;
  b.limit = limit;
  // LevelDB keeps up to max_open_files - 10 tables open and a few more files: a
  // quarter of the fds, at least 64 and at most 1,000 (its own default).
  b.leveldb = std::clamp<size_t>(limit / 4, 64, 1000);
  b.control_clients = std::clamp<size_t>(limit / 8, 16, 256);
  b.reserve = kReserve + 16;  // and LevelDB's files beyond its table cache
  const size_t used = b.leveldb + b.control_clients + 2 + b.reserve;  // + listener
  b.connections = limit > used ? limit - used : 0;
  return b;
}

std::string FdBudget::Describe() const {
  std::string s = "file descriptors: limit " + std::to_string(limit);
  if (raised_from != 0 && raised_from != limit) {
    s += " (raised from " + std::to_string(raised_from) + ")";
  }
  return s + "; peer connections at most " + std::to_string(connections) + ", LevelDB " +
         std::to_string(leveldb) + ", control clients " +
         std::to_string(control_clients) + ", reserve " + std::to_string(reserve);
}

Result<FdBudget> RaiseAndShareFds() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return Status::IOError(std::string("getrlimit(RLIMIT_NOFILE): ") + strerror(errno));
  }
  const size_t found = static_cast<size_t>(rl.rlim_cur);
  size_t want = rl.rlim_max == RLIM_INFINITY ? kMaxFdLimit
                                             : std::min<size_t>(rl.rlim_max, kMaxFdLimit);
  want = std::max(want, found);  // never lower it
  if (want > found) {
    rlimit raised = rl;
    raised.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) want = found;
  }
  if (want < kMinFdLimit) {
    return Status::InvalidArgument(
        "the open-file limit is " + std::to_string(want) + " (hard limit " +
        std::to_string(rl.rlim_max) + "); cairnd needs at least " +
        std::to_string(kMinFdLimit) + ": raise it (ulimit -n, LimitNOFILE=)");
  }
  FdBudget b = ShareFds(want);
  b.raised_from = found;
  return b;
}

}  // namespace cairn::node
