// The KV view: reads, the overlay that batches view changes with their events,
// and the rebuild from snapshot + events that must equal the kept view.
#include <algorithm>

#include "journal/chain.h"
#include "journal/journal_internal.h"

namespace cairn::journal {
namespace internal {

Result<std::optional<wire::KvEntry>> KvOverlay::Get(const std::string& kv_key) {
  if (auto it = changes_.find(kv_key); it != changes_.end()) return it->second;
  return store_->GetProto<wire::KvEntry>(kv_key);
}

void KvOverlay::Set(const std::string& kv_key, std::optional<wire::KvEntry> entry) {
  changes_[kv_key] = std::move(entry);
}

Status KvOverlay::ApplyEvent(std::string_view device, const wire::Record& r) {
  if (!IsKvType(r.type())) return Status::Ok();
  Result<KvOp> op = ParseKvOp(r.type(), r.payload());
  if (!op.ok()) return Status::Ok();  // refused at its source; opaque everywhere
  return ApplyOp(device, *op, r.seq(), r.time_us());
}

Status KvOverlay::ApplyOp(std::string_view device, const KvOp& op, uint64_t seq,
                          int64_t time_us) {
  const std::string key = layout::KvKey(device, op.store, op.key);
  CAIRN_ASSIGN_OR_RETURN(auto current, Get(key));
  Set(key, ApplyKvOp(op, current, seq, time_us));
  return Status::Ok();
}

void KvOverlay::Flush(leveldb::WriteBatch* batch) const {
  for (const auto& [key, entry] : changes_) {
    if (entry) {
      batch->Put(key, entry->SerializeAsString());
    } else {
      batch->Delete(key);
    }
  }
}

}  // namespace internal

namespace {

bool ByStoreKey(const KvItem& a, const KvItem& b) {
  return std::tie(a.store, a.key) < std::tie(b.store, b.key);
}

}  // namespace

Result<std::optional<KvItem>> Journal::KvGet(std::string_view device,
                                             std::string_view store,
                                             std::string_view key) const {
  internal::SnapshotHold hold(store_->db());
  // Not mid-install; not unknown or being deleted (Forget), when nothing is read.
  CAIRN_ASSIGN_OR_RETURN(auto meta, MetaAt(device, hold.get()));
  if (!meta) return std::optional<KvItem>();
  CAIRN_ASSIGN_OR_RETURN(auto e, store_->GetProto<wire::KvEntry>(
                                     layout::KvKey(device, store, key), hold.get()));
  if (!e || KvExpired(*e, options_.clock->NowMicros())) return std::optional<KvItem>();
  return std::optional<KvItem>(ToItem(std::string(store), std::string(key), *e));
}

Result<std::vector<KvItem>> Journal::KvList(std::string_view device,
                                            std::string_view store,
                                            std::string_view start_after,
                                            size_t limit) const {
  internal::SnapshotHold hold(store_->db());
  CAIRN_ASSIGN_OR_RETURN(auto meta, MetaAt(device, hold.get()));  // as in KvGet
  if (!meta) return std::vector<KvItem>();
  const std::string prefix = layout::KvStorePrefix(device, store);
  const int64_t now = options_.clock->NowMicros();
  std::vector<KvItem> out;
  auto it = store_->NewIterator(hold.get());
  for (it->Seek(prefix + std::string(start_after));
       it->Valid() && it->key().starts_with(prefix) && out.size() < limit; it->Next()) {
    std::string key(it->key().data() + prefix.size(), it->key().size() - prefix.size());
    if (key.empty() || key == start_after) continue;
    wire::KvEntry e;
    if (!e.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::Corruption(store_->path() + ": KV entry '" + key + "' is damaged");
    }
    if (!KvExpired(e, now)) out.push_back(ToItem(std::string(store), key, e));
  }
  CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "listing the KV view"));
  return out;
}

Result<std::vector<KvItem>> Journal::KeptView(std::string_view device) const {
  const std::string prefix = layout::KvPrefix(device);
  std::vector<KvItem> out;
  auto it = store_->NewIterator();
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string d, store, key;
    wire::KvEntry e;
    if (!layout::ParseKvKey(it->key().ToString(), &d, &store, &key) ||
        !e.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::Corruption(store_->path() + ": KV entry of '" + std::string(device) +
                                "' is damaged");
    }
    out.push_back(ToItem(store, key, e));
  }
  CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "reading the KV view"));
  std::sort(out.begin(), out.end(), ByStoreKey);
  return out;
}

Result<std::vector<KvItem>> Journal::RebuildView(std::string_view device) const {
  CAIRN_ASSIGN_OR_RETURN(auto meta, MetaAt(device, nullptr));
  if (!meta)
    return Status::NotFound("no stream for device '" + std::string(device) + "'");
  std::map<std::pair<std::string, std::string>, wire::KvEntry> view;
  if (meta->snapshot() > 0) {
    CAIRN_ASSIGN_OR_RETURN(SnapshotData snap, ReadSnapshotAt(device, nullptr));
    for (const auto& chunk : snap.chunks) {
      for (const auto& e : chunk.entries()) view[{e.store(), e.key()}] = e.entry();
    }
  }
  // Events at or below the snapshot (kept by retention) are in it already.
  for (uint64_t from = std::max(meta->first(), meta->snapshot() + 1);
       from <= meta->last();) {
    CAIRN_ASSIGN_OR_RETURN(auto records,
                           ReadAt(device, from, meta->last(), 4u << 20, false, nullptr));
    for (const auto& r : records) {
      if (!IsKvType(r.type())) continue;
      Result<KvOp> op = ParseKvOp(r.type(), r.payload());
      if (!op.ok()) continue;
      auto key = std::make_pair(op->store, op->key);
      std::optional<wire::KvEntry> cur;
      if (auto it = view.find(key); it != view.end()) cur = it->second;
      auto next = ApplyKvOp(*op, cur, r.seq(), r.time_us());
      if (next) {
        view[key] = *next;
      } else {
        view.erase(key);
      }
    }
    from = records.back().seq() + 1;
  }
  std::vector<KvItem> out;
  for (const auto& [k, e] : view) out.push_back(ToItem(k.first, k.second, e));
  std::sort(out.begin(), out.end(), ByStoreKey);
  return out;
}

}  // namespace cairn::journal
