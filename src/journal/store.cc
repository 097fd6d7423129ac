#include "journal/store.h"

#include <leveldb/cache.h>
#include <leveldb/filter_policy.h>

namespace cairn::journal {
namespace {

Status Damaged(const std::string& path, const std::string& what) {
  return Status::Corruption(path + " is damaged and cannot be trusted: " + what +
                            ". Restore it from a backup, or move it aside so the "
                            "node re-fills from its peers");
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const StoreOptions& options) {
  std::unique_ptr<Store> store(new Store());
  store->path_ = options.path;
  store->filter_.reset(leveldb::NewBloomFilterPolicy(10));
  store->cache_.reset(leveldb::NewLRUCache(options.block_cache_bytes));
  leveldb::Options o;
  o.create_if_missing = options.create_if_missing;
  // Without paranoid checks a flipped bit in the log silently drops acknowledged
  // records on reopen; with them, Open fails and names the damage.
  o.paranoid_checks = true;
  o.env = options.env ? options.env : leveldb::Env::Default();
  o.write_buffer_size = options.write_buffer_bytes;
  o.block_cache = store->cache_.get();
  o.filter_policy = store->filter_.get();
  o.max_open_files = options.max_open_files;
  leveldb::DB* db = nullptr;
  leveldb::Status s = leveldb::DB::Open(o, options.path, &db);
  if (!s.ok()) {
    const std::string text = s.ToString();
    if (text.find("lock") != std::string::npos) {
      return Status::Unavailable(
          options.path + " is in use by another process (LevelDB lock held): " + text);
    }
    if (s.IsCorruption()) return Damaged(options.path, text);
    return store->Convert(s, "opening");
  }
  store->db_.reset(db);
  if (options.verify_on_open) CAIRN_RETURN_IF_ERROR(store->VerifyAll());
  return store;
}

Status Store::VerifyAll() const {
  leveldb::ReadOptions ro;
  ro.verify_checksums = true;
  ro.fill_cache = false;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(ro));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
  }
  if (it->status().IsCorruption()) return Damaged(path_, it->status().ToString());
  return Convert(it->status(), "verifying");
}

Store::~Store() {
  db_.reset();  // before the cache and filter it uses
}

Result<std::optional<std::string>> Store::Get(std::string_view key,
                                              const leveldb::Snapshot* snap) const {
  leveldb::ReadOptions ro;
  ro.verify_checksums = true;
  ro.snapshot = snap;
  std::string value;
  leveldb::Status s = db_->Get(ro, leveldb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return Convert(s, "reading");
  return std::optional<std::string>(std::move(value));
}

Status Store::Write(leveldb::WriteBatch* batch, bool sync) {
  leveldb::WriteOptions wo;
  wo.sync = sync;
  return Convert(db_->Write(wo, batch), "writing");
}

std::unique_ptr<leveldb::Iterator> Store::NewIterator(const leveldb::Snapshot* snap,
                                                      bool fill_cache) const {
  leveldb::ReadOptions ro;
  ro.verify_checksums = true;
  ro.snapshot = snap;
  ro.fill_cache = fill_cache;
  return std::unique_ptr<leveldb::Iterator>(db_->NewIterator(ro));
}

Status Store::Convert(const leveldb::Status& s, std::string_view doing) const {
  if (s.ok()) return Status::Ok();
  std::string m = path_ + ": " + std::string(doing) + ": " + s.ToString();
  if (s.IsCorruption()) return Status::Corruption(m);
  if (s.IsNotFound()) return Status::NotFound(m);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(m);
  return Status::IOError(m);
}

}  // namespace cairn::journal
