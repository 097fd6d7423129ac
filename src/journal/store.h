// Store: the journal's LevelDB, opened the only safe way (paranoid_checks on,
// every read verifying checksums) with errors that name the damage, and typed
// access to the cairn.proto values kept in it.
//
// Thread-safety: as leveldb::DB — reads and writes may come from any thread.
#pragma once

#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/write_batch.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace cairn::journal {

struct StoreOptions {
  std::string path;
  leveldb::Env* env = nullptr;  // nullptr: the real file system. Not owned.
  bool create_if_missing = true;
  size_t write_buffer_bytes = 16u << 20;
  size_t block_cache_bytes = 32u << 20;
  // File descriptors LevelDB may keep open (its table cache and a few more).
  int max_open_files = 500;
  // Read every entry once at open, checksums verified: LevelDB checks a table
  // block only when it reads it, so without this a flipped bit in a table goes
  // unnoticed until that range is served. Costs one sequential read of the store.
  bool verify_on_open = true;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const StoreOptions& options);
  ~Store();

  leveldb::DB* db() { return db_.get(); }
  const std::string& path() const { return path_; }

  // Reads with verify_checksums; `snap` may be nullptr for the latest state.
  Result<std::optional<std::string>> Get(std::string_view key,
                                         const leveldb::Snapshot* snap = nullptr) const;
  template <typename Proto>
  Result<std::optional<Proto>> GetProto(std::string_view key,
                                        const leveldb::Snapshot* snap = nullptr) const;

  Status Write(leveldb::WriteBatch* batch, bool sync);
  // `fill_cache` false for a bulk scan (a snapshot staged or installed), which
  // would otherwise push what reads need out of the block cache.
  std::unique_ptr<leveldb::Iterator> NewIterator(const leveldb::Snapshot* snap = nullptr,
                                                 bool fill_cache = true) const;

  // Reads every entry with checksums verified; Corruption names the damage.
  Status VerifyAll() const;

  // Maps a LevelDB status to ours, naming the store and what we were doing.
  Status Convert(const leveldb::Status& s, std::string_view doing) const;

 private:
  Store() = default;
  std::string path_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  std::unique_ptr<leveldb::Cache> cache_;
  std::unique_ptr<leveldb::DB> db_;
};

template <typename Proto>
Result<std::optional<Proto>> Store::GetProto(std::string_view key,
                                             const leveldb::Snapshot* snap) const {
  CAIRN_ASSIGN_OR_RETURN(std::optional<std::string> raw, Get(key, snap));
  if (!raw) return std::optional<Proto>();
  Proto p;
  if (!p.ParseFromString(*raw)) {
    return Status::Corruption(path_ + ": stored " + Proto::descriptor()->name() +
                              " does not decode");
  }
  return std::optional<Proto>(std::move(p));
}

}  // namespace cairn::journal
