#include "discovery/peer_store.h"

#include <memory>

#include "base/bytes.h"
#include "base/check.h"

namespace cairn::discovery {
namespace {

constexpr char kPeerPrefix = 'p';

Status FromLevelDb(const leveldb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  return Status::IOError(std::string(what) + ": " + s.ToString());
}

}  // namespace

std::string PeerKey(std::string_view node_id) {
  std::string key(1, kPeerPrefix);
  PutLengthPrefixed(&key, node_id);
  return key;
}

Result<std::vector<wire::PeerRecord>> LevelDbPeerStore::Load(size_t max) {
  leveldb::ReadOptions ro;
  ro.verify_checksums = true;
  std::unique_ptr<leveldb::Iterator> it(db_->NewIterator(ro));
  std::vector<wire::PeerRecord> out;
  const std::string prefix(1, kPeerPrefix);
  for (it->Seek(prefix); it->Valid() && out.size() < max; it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    if (key.empty() || key[0] != kPeerPrefix) break;
    wire::PeerRecord r;
    key.remove_prefix(1);
    std::string_view id;
    if (!GetLengthPrefixed(&key, &id) || !key.empty() ||
        !r.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())) ||
        r.node_id() != id) {
      return Status::Corruption("peer history record " + ToHex(it->key().ToString()) +
                                " does not parse");
    }
    out.push_back(std::move(r));
  }
  CAIRN_RETURN_IF_ERROR(FromLevelDb(it->status(), "reading peer history"));
  return out;
}

Status LevelDbPeerStore::Save(const wire::PeerRecord& record) {
  CHECK(!record.node_id().empty());
  return FromLevelDb(db_->Put(leveldb::WriteOptions(), PeerKey(record.node_id()),
                              record.SerializeAsString()),
                     "saving peer " + record.node_id());
}

Status LevelDbPeerStore::Erase(const std::string& node_id) {
  return FromLevelDb(db_->Delete(leveldb::WriteOptions(), PeerKey(node_id)),
                     "erasing peer " + node_id);
}

}  // namespace cairn::discovery
