#include "sim/sim_env.h"

#include <algorithm>
#include <cstring>

namespace cairn::sim {
namespace {

std::string Parent(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

class SeqFile final : public leveldb::SequentialFile {
 public:
  SeqFile(SimEnv* env, std::shared_ptr<SimEnv::File> f) : env_(env), f_(std::move(f)) {}
  leveldb::Status Read(size_t n, leveldb::Slice* result, char* scratch) override {
    std::lock_guard<std::mutex> l(env_->data_mu());
    const size_t size = f_->data.size();
    const size_t take = pos_ >= size ? 0 : std::min(n, size - pos_);
    if (take > 0) std::memcpy(scratch, f_->data.data() + pos_, take);
    pos_ += take;
    *result = leveldb::Slice(scratch, take);
    return leveldb::Status::OK();
  }
  leveldb::Status Skip(uint64_t n) override {
    pos_ += n;
    return leveldb::Status::OK();
  }

 private:
  SimEnv* env_;
  std::shared_ptr<SimEnv::File> f_;
  size_t pos_ = 0;
};

class RandomFile final : public leveldb::RandomAccessFile {
 public:
  RandomFile(SimEnv* env, std::shared_ptr<SimEnv::File> f)
      : env_(env), f_(std::move(f)) {}
  leveldb::Status Read(uint64_t offset, size_t n, leveldb::Slice* result,
                       char* scratch) const override {
    std::lock_guard<std::mutex> l(env_->data_mu());
    const size_t size = f_->data.size();
    if (offset > size) return leveldb::Status::IOError("read past the end of a file");
    const size_t take = std::min<size_t>(n, size - offset);
    if (take > 0) std::memcpy(scratch, f_->data.data() + offset, take);
    *result = leveldb::Slice(scratch, take);
    return leveldb::Status::OK();
  }

 private:
  SimEnv* env_;
  std::shared_ptr<SimEnv::File> f_;
};

class WriteFile final : public leveldb::WritableFile {
 public:
  WriteFile(SimEnv* env, std::shared_ptr<SimEnv::File> f) : env_(env), f_(std::move(f)) {}
  leveldb::Status Append(const leveldb::Slice& data) override {
    if (auto s = env_->WriteFault(); !s.ok()) return s;
    std::lock_guard<std::mutex> l(env_->data_mu());
    f_->data.append(data.data(), data.size());
    return leveldb::Status::OK();
  }
  leveldb::Status Close() override { return leveldb::Status::OK(); }
  leveldb::Status Flush() override { return leveldb::Status::OK(); }
  leveldb::Status Sync() override {
    if (auto s = env_->WriteFault(); !s.ok()) return s;
    std::lock_guard<std::mutex> l(env_->data_mu());
    f_->synced = f_->data.size();
    return leveldb::Status::OK();
  }

 private:
  SimEnv* env_;
  std::shared_ptr<SimEnv::File> f_;
};

class NullLogger final : public leveldb::Logger {
 public:
  void Logv(const char*, std::va_list) override {}
};

class Lock final : public leveldb::FileLock {
 public:
  explicit Lock(std::string path) : name(std::move(path)) {}
  std::string name;
};

}  // namespace

SimEnv::SimEnv() : leveldb::EnvWrapper(leveldb::Env::Default()) {}
SimEnv::~SimEnv() = default;

SimEnv::Files SimEnv::Image(const Files& files, Rng& rng) {
  Files out;
  for (const auto& [name, f] : files) {
    auto copy = std::make_shared<File>();
    const size_t unsynced = f->data.size() - std::min(f->synced, f->data.size());
    // What the disk wrote of the rest on its own: none, all, or a torn part.
    size_t keep = 0;
    if (unsynced > 0) {
      switch (rng.Uniform(3)) {
        case 0:
          keep = 0;
          break;
        case 1:
          keep = unsynced;
          break;
        default:
          keep = rng.Uniform(unsynced + 1);
      }
    }
    copy->data = f->data.substr(0, f->synced + keep);
    copy->synced = copy->data.size();
    out.emplace(name, std::move(copy));
  }
  return out;
}

void SimEnv::Freeze(Rng& rng) {
  std::lock_guard<std::mutex> l(mu_);
  std::lock_guard<std::mutex> d(data_mu_);
  frozen_ = Image(files_, rng);
  has_frozen_ = true;
}

void SimEnv::RestoreFrozen() {
  std::lock_guard<std::mutex> l(mu_);
  if (!has_frozen_) return;
  files_ = std::move(frozen_);
  frozen_.clear();
  has_frozen_ = false;
  locks_.clear();  // the process that held them is gone
}

void SimEnv::Wipe() {
  std::lock_guard<std::mutex> l(mu_);
  files_.clear();
  locks_.clear();
}

void SimEnv::set_fault(Fault f) {
  std::lock_guard<std::mutex> l(mu_);
  fault_ = f;
}

SimEnv::Fault SimEnv::fault() const {
  std::lock_guard<std::mutex> l(mu_);
  return fault_;
}

uint64_t SimEnv::faults_given() const {
  std::lock_guard<std::mutex> l(mu_);
  return faults_given_;
}

uint64_t SimEnv::bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  std::lock_guard<std::mutex> d(data_mu_);
  uint64_t n = 0;
  for (const auto& [name, f] : files_) n += f->data.size();
  return n;
}

leveldb::Status SimEnv::WriteFault() {
  std::lock_guard<std::mutex> l(mu_);
  switch (fault_) {
    case Fault::kNoSpace:
      ++faults_given_;
      return leveldb::Status::IOError("sim", "No space left on device");
    case Fault::kIoError:
      ++faults_given_;
      return leveldb::Status::IOError("sim", "Input/output error");
    default:
      return leveldb::Status::OK();
  }
}

leveldb::Status SimEnv::NewSequentialFile(const std::string& f,
                                          leveldb::SequentialFile** r) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(f);
  if (it == files_.end()) return leveldb::Status::NotFound(f, "no such file");
  *r = new SeqFile(this, it->second);
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::NewRandomAccessFile(const std::string& f,
                                            leveldb::RandomAccessFile** r) {
  std::lock_guard<std::mutex> l(mu_);
  if (fault_ == Fault::kTooManyFiles) {
    ++faults_given_;
    return leveldb::Status::IOError(f, "Too many open files");
  }
  auto it = files_.find(f);
  if (it == files_.end()) return leveldb::Status::NotFound(f, "no such file");
  *r = new RandomFile(this, it->second);
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::NewWritableFile(const std::string& f, leveldb::WritableFile** r) {
  std::lock_guard<std::mutex> l(mu_);
  if (fault_ == Fault::kTooManyFiles || fault_ == Fault::kNoSpace) {
    ++faults_given_;
    return leveldb::Status::IOError(
        f, fault_ == Fault::kNoSpace ? "No space left on device" : "Too many open files");
  }
  if (!dirs_.count(Parent(f))) return leveldb::Status::NotFound(f, "no such directory");
  auto file = std::make_shared<File>();
  files_[f] = file;
  *r = new WriteFile(this, std::move(file));
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::NewAppendableFile(const std::string& f,
                                          leveldb::WritableFile** r) {
  std::lock_guard<std::mutex> l(mu_);
  if (fault_ == Fault::kTooManyFiles) {
    ++faults_given_;
    return leveldb::Status::IOError(f, "Too many open files");
  }
  auto& file = files_[f];
  if (!file) file = std::make_shared<File>();
  *r = new WriteFile(this, file);
  return leveldb::Status::OK();
}

bool SimEnv::FileExists(const std::string& f) {
  std::lock_guard<std::mutex> l(mu_);
  return files_.count(f) > 0 || dirs_.count(f) > 0;
}

leveldb::Status SimEnv::GetChildren(const std::string& dir,
                                    std::vector<std::string>* result) {
  std::lock_guard<std::mutex> l(mu_);
  result->clear();
  const std::string prefix = dir + "/";
  for (const auto& [name, f] : files_) {
    if (name.starts_with(prefix) && name.find('/', prefix.size()) == std::string::npos)
      result->push_back(name.substr(prefix.size()));
  }
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::RemoveFile(const std::string& f) {
  std::lock_guard<std::mutex> l(mu_);
  if (!files_.erase(f)) return leveldb::Status::NotFound(f, "no such file");
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::CreateDir(const std::string& d) {
  std::lock_guard<std::mutex> l(mu_);
  dirs_.insert(d);
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::RemoveDir(const std::string& d) {
  std::lock_guard<std::mutex> l(mu_);
  dirs_.erase(d);
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::GetFileSize(const std::string& f, uint64_t* size) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(f);
  if (it == files_.end()) return leveldb::Status::NotFound(f, "no such file");
  std::lock_guard<std::mutex> d(data_mu_);
  *size = it->second->data.size();
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::RenameFile(const std::string& src, const std::string& target) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(src);
  if (it == files_.end()) return leveldb::Status::NotFound(src, "no such file");
  files_[target] = it->second;
  files_.erase(src);
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::LockFile(const std::string& f, leveldb::FileLock** lock) {
  std::lock_guard<std::mutex> l(mu_);
  if (!locks_.insert(f).second) return leveldb::Status::IOError(f, "lock held");
  auto& file = files_[f];
  if (!file) file = std::make_shared<File>();
  *lock = new Lock(f);
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::UnlockFile(leveldb::FileLock* lock) {
  auto* l = static_cast<Lock*>(lock);
  {
    std::lock_guard<std::mutex> g(mu_);
    locks_.erase(l->name);
  }
  delete l;
  return leveldb::Status::OK();
}

leveldb::Status SimEnv::NewLogger(const std::string&, leveldb::Logger** result) {
  *result = new NullLogger;
  return leveldb::Status::OK();
}

}  // namespace cairn::sim
