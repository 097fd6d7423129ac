// SimEnv: an in-memory file system under LevelDB for the simulator, one per
// simulated node. Every file remembers how much of it was synced, so a crash
// can lose exactly what a disk may lose: a crash keeps each file's synced
// prefix and, drawn from the simulation's seed, some of the rest (a disk may
// have written part of what was not synced on its own; a torn tail). File
// creation, renames and removals are durable at once (LevelDB syncs the file
// before the rename that publishes it; the directory entry is taken as written).
// Disk faults: while set, writes (Append, Sync), new files, or both fail with
// the error a full disk, a failing disk or a process out of descriptors gives.
//
// LevelDB's background compaction still runs on the default Env's thread
// (Schedule): it changes which files exist, never what a read returns, so runs
// stay reproducible at the level the simulator traces.
//
// Thread-safety: safe from any thread (LevelDB writes from the journal's writer
// and its compaction thread).
#pragma once

#include <leveldb/env.h>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "base/rng.h"

namespace cairn::sim {

class SimEnv final : public leveldb::EnvWrapper {
 public:
  enum class Fault { kNone, kNoSpace, kIoError, kTooManyFiles };

  SimEnv();
  ~SimEnv() override;

  // A crash, in two steps: Freeze keeps what survives a crash now (each file's
  // synced prefix and part of the rest); the node's journal is then closed
  // (what it writes while closing is not kept); RestoreFrozen puts the image
  // back.
  void Freeze(Rng& rng);
  void RestoreFrozen();
  // Wipes everything (a disk replaced).
  void Wipe();
  void set_fault(Fault f);
  Fault fault() const;
  uint64_t faults_given() const;
  uint64_t bytes() const;  // all files' contents

  leveldb::Status NewSequentialFile(const std::string& f,
                                    leveldb::SequentialFile** r) override;
  leveldb::Status NewRandomAccessFile(const std::string& f,
                                      leveldb::RandomAccessFile** r) override;
  leveldb::Status NewWritableFile(const std::string& f,
                                  leveldb::WritableFile** r) override;
  leveldb::Status NewAppendableFile(const std::string& f,
                                    leveldb::WritableFile** r) override;
  bool FileExists(const std::string& f) override;
  leveldb::Status GetChildren(const std::string& dir,
                              std::vector<std::string>* result) override;
  leveldb::Status RemoveFile(const std::string& f) override;
  leveldb::Status CreateDir(const std::string& d) override;
  leveldb::Status RemoveDir(const std::string& d) override;
  leveldb::Status GetFileSize(const std::string& f, uint64_t* size) override;
  leveldb::Status RenameFile(const std::string& src, const std::string& target) override;
  leveldb::Status LockFile(const std::string& f, leveldb::FileLock** lock) override;
  leveldb::Status UnlockFile(leveldb::FileLock* lock) override;
  leveldb::Status NewLogger(const std::string& f, leveldb::Logger** result) override;

  struct File {
    std::string data;
    size_t synced = 0;
  };

  // For the file classes: the fault to give a write now, if any; and the lock
  // of every file's contents (the compaction thread writes while others read).
  leveldb::Status WriteFault();
  std::mutex& data_mu() { return data_mu_; }

 private:
  using Files = std::map<std::string, std::shared_ptr<File>>;
  static Files Image(const Files& files, Rng& rng);

  mutable std::mutex mu_;       // the file table, locks, faults
  mutable std::mutex data_mu_;  // every file's contents; taken after mu_
  Files files_;
  std::set<std::string> dirs_;
  std::set<std::string> locks_;
  Files frozen_;
  bool has_frozen_ = false;
  Fault fault_ = Fault::kNone;
  uint64_t faults_given_ = 0;
};

}  // namespace cairn::sim
