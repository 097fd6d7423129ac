#include "node/dev_certs.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include "journal/identity.h"
#include "node/log.h"

extern char** environ;

namespace cairn::node {
namespace {

namespace fs = std::filesystem;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

std::string CertsDir() {
  std::string dir = Env("CAIRN_CERTS_DIR");
  return dir.empty() ? std::string(CAIRN_CERTS_DIR_DEFAULT) : dir;
}

// Runs `bash SCRIPT ARGS...`, its output on our stderr.
Status RunScript(const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> all = {"bash", CertsDir() + "/" + script};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, 2, 1);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, "bash", &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return Status::IOError("cannot run bash: " + std::string(strerror(rc)));
  int wstatus = 0;
  while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return Status::IOError(all[1] + " failed (see above)");
  }
  return Status::Ok();
}

// A node id from the data directory's name: its safe characters and a hash of its
// absolute path, so that ./a/data and ./b/data differ.
std::string NameFor(const std::string& data_dir) {
  std::string abs = fs::absolute(data_dir).lexically_normal().string();
  std::string base = fs::path(abs).filename().string();
  if (base.empty()) base = fs::path(abs).parent_path().filename().string();
  std::string name = "dev-";
  for (char ch : base) {
    bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
    if (ok && name.size() < 40) name.push_back(ch);
  }
  char hash[16];
  std::snprintf(hash, sizeof hash, "-%06zx", std::hash<std::string>{}(abs)&0xffffff);
  return name + hash;
}

Result<std::string> NodeName(const std::string& data_dir) {
  std::string path = data_dir + "/dev-node-id";
  if (fs::exists(path)) {
    CAIRN_ASSIGN_OR_RETURN(std::string name, journal::ReadFileToString(path));
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    if (name.empty()) return Status::InvalidArgument(path + " is empty");
    return name;
  }
  std::string name = NameFor(data_dir);
  std::ofstream out(path);
  out << name << "\n";
  if (!out.flush()) return Status::IOError("cannot write " + path);
  return name;
}

// An exclusive lock on DIR/.lock for as long as the returned fd is open.
Result<int> LockDir(const std::string& dir) {
  std::string path = dir + "/.lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::IOError("cannot open " + path + ": " + strerror(errno));
  while (flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      close(fd);
      return Status::IOError("cannot lock " + path + ": " + strerror(errno));
    }
  }
  return fd;
}

}  // namespace

std::string DevCaDir() {
  std::string dir = Env("CAIRN_DEV_CA");
  if (!dir.empty()) return dir;
  std::string xdg = Env("XDG_DATA_HOME");
  if (!xdg.empty()) return xdg + "/cairn/dev-ca";
  return Env("HOME") + "/.local/share/cairn/dev-ca";
}

Result<CertFiles> EnsureDevCerts(const std::string& data_dir) {
  std::string dir = DevCaDir();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return Status::IOError("cannot create dev CA directory " + dir + ": " + ec.message());
  CAIRN_ASSIGN_OR_RETURN(std::string name, NodeName(data_dir));
  CAIRN_ASSIGN_OR_RETURN(int lock, LockDir(dir));
  Status s;
  if (!fs::exists(dir + "/ca.crt")) {
    CAIRN_LOG(kInfo) << "dev: making the dev CA in " << dir;
    s = RunScript("make-ca.sh", {dir});
  }
  if (s.ok() && !fs::exists(dir + "/" + name + ".crt")) {
    CAIRN_LOG(kInfo) << "dev: making the node certificate " << dir << "/" << name
                     << ".crt";
    s = RunScript("make-node.sh", {dir, name});
  }
  close(lock);
  CAIRN_RETURN_IF_ERROR(s);
  return CertFiles{dir + "/ca.crt", dir + "/" + name + ".crt", dir + "/" + name + ".key"};
}

}  // namespace cairn::node
