#include "node/interest_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace cairn::node {
namespace {

Status Errno(const std::string& what) {
  return Status::IOError(what + ": " + std::strerror(errno));
}

}  // namespace

std::string InterestPath(const std::string& data_dir) { return data_dir + "/interest"; }

Result<NodeInterest> LoadInterest(const std::string& data_dir,
                                  const std::vector<std::string>& flags) {
  const std::string path = InterestPath(data_dir);
  std::ifstream in(path);
  if (!in) {
    if (errno != ENOENT) return Errno("cannot read " + path);
    const bool given = !flags.empty();
    auto interest = sync::Interest::Parse(given ? flags : std::vector<std::string>{"*"});
    if (!interest.ok()) return interest.status().WithContext("--follow");
    return NodeInterest{std::move(*interest), given ? "--follow / config" : "default"};
  }
  std::vector<std::string> patterns;
  std::string line;
  bool none = false;  // the line "-": no pattern, on purpose
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#') continue;
    if (line == "-") {
      none = true;
      continue;
    }
    if (Status s = sync::Interest::CheckPattern(line); !s.ok()) {
      return s.WithContext(path + " line " + std::to_string(n) +
                           " (written by cairn follow; fix or remove it)");
    }
    patterns.push_back(line);
  }
  if (in.bad()) return Errno("cannot read " + path);
  // An empty or cut file must not read as "follow nothing", which would delete
  // every stream this node stores.
  if (patterns.empty() && !none) {
    return Status::Corruption(path +
                              " names no pattern (not even '-' for none): fix it, "
                              "or remove it to return to --follow");
  }
  auto interest = sync::Interest::Parse(patterns);
  if (!interest.ok()) return interest.status().WithContext(path);
  return NodeInterest{std::move(*interest), "cairn follow (" + path + ")"};
}

Status SaveInterest(const std::string& data_dir, const sync::Interest& interest) {
  const std::string path = InterestPath(data_dir);
  const std::string tmp = path + ".tmp";
  std::string text =
      "# What this node follows, one pattern per line; '-' alone: only its own devices.\n"
      "# Written by `cairn follow` / `cairn unfollow`; it wins over --follow until\n"
      "# `cairn follow --reset` removes it.\n";
  for (const auto& p : interest.patterns()) text += p + "\n";
  if (interest.patterns().empty()) text += "-\n";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot write " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = Errno("cannot write " + tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = Errno("cannot sync " + tmp);
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("cannot replace " + path);
  int dir = ::open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    (void)::fsync(dir);
    ::close(dir);
  }
  return Status::Ok();
}

Status RemoveInterest(const std::string& data_dir) {
  const std::string path = InterestPath(data_dir);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return Errno("cannot remove " + path);
  return Status::Ok();
}

}  // namespace cairn::node
