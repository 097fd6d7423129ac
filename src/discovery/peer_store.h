// PeerStore: where a node keeps its peer history (node id, addresses, last seen,
// attempts, pinned) so that known peers are reconnected after a restart. The core
// (PeerManager) asks for saves and erases through actions; the driver applies them
// here and feeds Load() back through PeerManager::Restore at start.
//
// LevelDbPeerStore keeps the records in the node's LevelDB under
//   'p' ‖ u32-BE length ‖ node id   →   wire::PeerRecord
// (see DESIGN.md, storage layout). Writes are not synced: losing the last few
// updates of peer history on power loss costs a reconnect, never data, and keeps an
// fsync off the loop thread.
//
// Thread-safety: LevelDbPeerStore is as thread-safe as leveldb::DB (any thread);
// Cairn calls it from the loop thread only.
// Ownership: the caller owns the leveldb::DB, which must outlive the store.
#pragma once

#include <leveldb/db.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "wire/schema.h"

namespace cairn::discovery {

class PeerStore {
 public:
  virtual ~PeerStore() = default;
  // At most `max` records, in key order. Corruption names a record that does not
  // parse.
  virtual Result<std::vector<wire::PeerRecord>> Load(size_t max) = 0;
  // REQUIRES: record.node_id() is not empty.
  virtual Status Save(const wire::PeerRecord& record) = 0;
  virtual Status Erase(const std::string& node_id) = 0;
};

// The key of one peer's record.
std::string PeerKey(std::string_view node_id);

class LevelDbPeerStore final : public PeerStore {
 public:
  explicit LevelDbPeerStore(leveldb::DB* db) : db_(db) {}
  Result<std::vector<wire::PeerRecord>> Load(size_t max) override;
  Status Save(const wire::PeerRecord& record) override;
  Status Erase(const std::string& node_id) override;

 private:
  leveldb::DB* db_;
};

}  // namespace cairn::discovery
