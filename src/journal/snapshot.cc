// Snapshots: the signed KV view of a device at a seq. Making one at the source,
// or installing a verified one from a peer, keeps the events at or below it:
// retention (retention.cc) decides when they go. Only a snapshot beyond our head
// replaces what we hold, and only when nothing of ours would be lost unchecked.
// A snapshot is written into the slot the current one is not in (layout.h), in
// batches of bounded size, and made current by one meta write: one received from
// a peer is staged there chunk by chunk as it arrives, so neither making nor
// receiving one holds more than a batch in memory.
#include <algorithm>
#include <future>

#include "base/bytes.h"
#include "journal/chain.h"
#include "journal/checks.h"
#include "journal/journal_internal.h"

namespace cairn::journal {

using internal::Op;

namespace {

// A write of a staging, of a snapshot made here, or of a view being replaced
// goes to LevelDB once it holds about this much: memory stays bounded whatever
// the snapshot's size.
constexpr size_t kBatchBytes = 8u << 20;
// Deletes per batch when an install clears a stream's events and view.
constexpr size_t kDeleteBatchKeys = 20'000;
// Dropped staging ids remembered, so that a part staged after its drop (the two
// race on the sync thread pool) is refused instead of staged for no one.
constexpr size_t kDroppedStages = 256;

std::unique_ptr<Op> SeqOp(Op::Kind kind, std::promise<Result<uint64_t>>* done) {
  auto op = std::make_unique<Op>();
  op->kind = kind;
  op->on_seq = [done](Result<uint64_t> r) { done->set_value(std::move(r)); };
  return op;
}

std::string Name(const wire::SnapshotHeader& h) {
  return "snapshot of '" + h.device() + "' at " + std::to_string(h.seq());
}

// Records `h` (already stored in `slot`) as the stream's current snapshot in
// `next`, and puts the meta.
void MakeCurrent(leveldb::WriteBatch* batch, const wire::SnapshotHeader& h, uint32_t slot,
                 wire::StreamMeta* next) {
  next->set_snapshot(h.seq());
  next->set_snapshot_chunks(h.chunks());
  next->set_snapshot_hash(h.hash());
  next->set_snapshot_slot(slot);
  next->clear_installing();
  batch->Put(layout::MetaKey(h.device()), next->SerializeAsString());
}

}  // namespace

Result<uint64_t> Journal::Snapshot(std::string_view device) {
  std::promise<Result<uint64_t>> done;
  auto f = done.get_future();
  auto op = SeqOp(Op::Kind::kSnapshot, &done);
  op->device = std::string(device);
  Submit(std::move(op), /*may_write_here=*/true);
  return f.get();
}

void Journal::AcceptGap(const std::string& device) {
  std::lock_guard<std::mutex> l(mu_);
  accept_gap_.insert(device);
}

bool Journal::GapAccepted(const std::string& device) const {
  std::lock_guard<std::mutex> l(mu_);
  return accept_gap_.count(device) > 0;
}

Status Journal::StageSnapshot(uint64_t stage_id, SnapshotData part) {
  std::promise<Result<uint64_t>> done;
  auto f = done.get_future();
  auto op = SeqOp(Op::Kind::kStage, &done);
  op->device = part.header.device();
  op->stage_id = stage_id;
  op->snapshot = std::move(part);
  Submit(std::move(op), /*may_write_here=*/true);
  return f.get().status();
}

void Journal::DropStaged(const std::string& device, uint64_t stage_id) {
  std::promise<Result<uint64_t>> done;
  auto f = done.get_future();
  auto op = SeqOp(Op::Kind::kDropStage, &done);
  op->device = device;
  op->stage_id = stage_id;
  Submit(std::move(op), /*may_write_here=*/true);
  (void)f.get();
}

Result<uint64_t> Journal::InstallSnapshot(std::string_view cert_der,
                                          SnapshotData last_part, uint64_t stage_id) {
  std::promise<Result<uint64_t>> done;
  auto f = done.get_future();
  auto op = SeqOp(Op::Kind::kInstall, &done);
  op->device = last_part.header.device();
  op->cert_der = std::string(cert_der);
  op->stage_id = stage_id;
  op->snapshot = std::move(last_part);
  Submit(std::move(op), /*may_write_here=*/true);
  return f.get();
}

Status Journal::CheckSnapshotHeader(std::string_view cert_der,
                                    const wire::SnapshotHeader& h) {
  CAIRN_ASSIGN_OR_RETURN(ReplicaStream start, BeginReplicaOp(h.device(), cert_der));
  CAIRN_RETURN_IF_ERROR(journal::CheckSnapshotHeader(h, *start.key));
  if (h.seq() <= start.meta.snapshot()) {
    // An honest peer sends a snapshot only for events we lack, beyond ours: an
    // old header (replayed, genuine) would have us stage chunks for nothing.
    return Status::Stale(Name(h) + " is not beyond the snapshot held here (" +
                         std::to_string(start.meta.snapshot()) + ")");
  }
  return Status::Ok();
}

Status Journal::Poison(const Status& cause) {
  std::lock_guard<std::mutex> l(mu_);
  if (poisoned_.ok()) {
    poisoned_ = Status::UnknownOutcome("journal stopped after a failed write (" +
                                       cause.message() + "); restart the node");
  }
  return poisoned_;
}

// ---------------------------------------------------------------- slots

// Puts a delete of every key in `slot` of `device` into `batch`.
Status Journal::ClearSlot(leveldb::WriteBatch* batch, const std::string& device,
                          uint32_t slot) const {
  auto it = store_->NewIterator(nullptr, /*fill_cache=*/false);
  for (it->Seek(layout::SnapshotKey(device, slot, 0)); it->Valid(); it->Next()) {
    uint32_t s = 0, index = 0;
    if (!layout::ParseSnapshotKey(std::string_view(it->key().data(), it->key().size()),
                                  device, &s, &index) ||
        s != slot) {
      break;
    }
    batch->Delete(it->key());
  }
  return store_->Convert(it->status(), "reading snapshot keys");
}

// With `chunks` known (a staging's, a replaced snapshot's), its keys are deleted
// without reading them: a transfer of gigabytes given up costs the writer no scan.
Status Journal::ClearSlotNow(const std::string& device, uint32_t slot,
                             std::optional<uint32_t> chunks) {
  leveldb::WriteBatch batch;
  if (chunks) {
    for (uint32_t i = 0; i <= *chunks; ++i)
      batch.Delete(layout::SnapshotKey(device, slot, i));
  } else {
    CAIRN_RETURN_IF_ERROR(ClearSlot(&batch, device, slot));
  }
  return batch.ApproximateSize() > 12 ? store_->Write(&batch, false) : Status::Ok();
}

// Chunks 1..count of `slot`, in order, read one at a time.
Status Journal::ForEachChunkIn(
    const std::string& device, uint32_t slot, uint32_t count,
    const std::function<Status(const wire::SnapshotChunk&)>& fn,
    const leveldb::Snapshot* at) const {
  auto it = store_->NewIterator(at, /*fill_cache=*/false);
  wire::SnapshotChunk chunk;
  uint32_t i = 1;
  const std::string where = store_->path() + ": snapshot of '" + device + "'";
  for (it->Seek(layout::SnapshotKey(device, slot, 1)); i <= count; it->Next(), ++i) {
    if (!it->Valid() || it->key() != layout::SnapshotKey(device, slot, i)) break;
    if (it->value().size() > kMaxChunkWireBytes) {
      return Status::InvalidArgument(where + ": chunk " + std::to_string(i) +
                                     " is over the 1 MiB limit");
    }
    if (!chunk.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::InvalidArgument(where + ": chunk " + std::to_string(i) +
                                     " does not parse");
    }
    CAIRN_RETURN_IF_ERROR(fn(chunk));
  }
  CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "reading snapshot chunks"));
  if (i <= count) {
    return Status::Corruption(where + ": chunk " + std::to_string(i) + " is missing");
  }
  return Status::Ok();
}

Status Journal::CheckStagedDigest(const wire::SnapshotHeader& h, uint32_t slot) const {
  SnapshotDigester digest;
  CAIRN_RETURN_IF_ERROR(
      ForEachChunkIn(h.device(), slot, h.chunks(), [&](const wire::SnapshotChunk& chunk) {
        for (const auto& e : chunk.entries()) digest.Add(e);
        return Status::Ok();
      }));
  if (digest.Final() != h.digest()) {
    return Status::Corruption(Name(h) + ": entries do not match the signed digest");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- staging

Status Journal::DoStage(const Op& op) {
  CAIRN_RETURN_IF_ERROR(Poisoned());
  const SnapshotData& part = op.snapshot;
  const wire::SnapshotHeader& h = part.header;
  const std::string& device = h.device();
  CAIRN_RETURN_IF_ERROR(ValidateDeviceId(device));
  if (h.chunks() > kMaxSnapshotChunks) {
    return Status::InvalidArgument(Name(h) + " claims more than " +
                                   std::to_string(kMaxSnapshotChunks) + " chunks");
  }
  if (std::find(dropped_stages_.begin(), dropped_stages_.end(), op.stage_id) !=
      dropped_stages_.end()) {
    return Status::FailedPrecondition(Name(h) + ": its staging was dropped");
  }
  leveldb::WriteBatch batch;
  Staging st;
  if (part.first_chunk == 1) {
    // A new staging, in the slot the current snapshot is not in; whatever was
    // there (another staging, an old snapshot) goes.
    {
      std::lock_guard<std::mutex> l(mu_);
      auto s = streams_.find(device);
      st.slot = s == streams_.end() ? 1 : 1 - s->second->meta.snapshot_slot();
    }
    st.id = op.stage_id;
    st.header = h;
    CAIRN_RETURN_IF_ERROR(ClearSlot(&batch, device, st.slot));
    batch.Put(layout::SnapshotKey(device, st.slot, 0), h.SerializeAsString());
  } else {
    auto it = staging_.find(device);
    if (it == staging_.end() || it->second.id != op.stage_id) {
      return Status::FailedPrecondition(Name(h) +
                                        ": its staging was replaced or dropped");
    }
    st = it->second;
    if (st.header.seq() != h.seq() || st.header.sig() != h.sig()) {
      return Status::InvalidArgument(Name(h) + ": a part under another header");
    }
    if (part.first_chunk != st.chunks + 1) {
      return Status::InvalidArgument(Name(h) + ": chunk " +
                                     std::to_string(part.first_chunk) + " after chunk " +
                                     std::to_string(st.chunks));
    }
  }
  const size_t n = part.chunk_count();
  if (st.chunks + n > h.chunks()) {
    return Status::InvalidArgument(Name(h) + ": more chunks than its header's " +
                                   std::to_string(h.chunks()));
  }
  for (size_t i = 0; i < n; ++i) {
    std::string parsed;
    if (part.encoded_chunks.empty()) parsed = part.chunks[i].SerializeAsString();
    const std::string& bytes =
        part.encoded_chunks.empty() ? parsed : part.encoded_chunks[i];
    if (bytes.size() > kMaxChunkWireBytes) {
      return Status::InvalidArgument(Name(h) + " has a chunk over the 1 MiB limit");
    }
    batch.Put(layout::SnapshotKey(device, st.slot, ++st.chunks), bytes);
  }
  // Synced like every write of a staging, a snapshot or an install (when writes
  // are): LevelDB syncs only its current log, and the one write that makes a
  // snapshot current must never outlive what it points to.
  if (Status s = store_->Write(&batch, options_.sync_writes); !s.ok()) {
    staging_.erase(device);
    (void)ClearSlotNow(device, st.slot, st.chunks);
    return s;
  }
  staging_[device] = std::move(st);
  return Status::Ok();
}

void Journal::DoDropStage(const Op& op) {
  dropped_stages_.push_back(op.stage_id);
  if (dropped_stages_.size() > kDroppedStages) dropped_stages_.pop_front();
  auto it = staging_.find(op.device);
  if (it == staging_.end() || it->second.id != op.stage_id) return;
  const uint32_t slot = it->second.slot, chunks = it->second.chunks;
  staging_.erase(it);
  (void)ClearSlotNow(op.device, slot,
                     chunks);  // else cleared by the next staging, or at open
}

// ---------------------------------------------------------------- making one

Result<uint64_t> Journal::DoSnapshot(const std::string& device) {
  CAIRN_RETURN_IF_ERROR(Poisoned());
  auto signer = signers_.find(device);
  if (signer == signers_.end()) {
    return Status::PermissionDenied("only the source of '" + device +
                                    "' can snapshot it; this node does not hold its key");
  }
  wire::StreamMeta meta;
  {
    std::lock_guard<std::mutex> l(mu_);
    meta = streams_.at(device)->meta;
  }
  if (meta.last() == 0)
    return Status::FailedPrecondition("'" + device + "' has no events");
  if (meta.last() == meta.snapshot()) return meta.snapshot();
  if (Status valid = signer->second->public_key()->ValidAt(options_.clock->NowMicros());
      !valid.ok()) {
    return Status::FailedPrecondition("cannot sign a snapshot of '" + device +
                                      "': " + valid.message() +
                                      "; renew it with certs/renew.sh (the key stays)");
  }

  // Entries expired by the time of the head event are dropped: the snapshot is a
  // function of the stream alone, the same on every node that rebuilds it. The
  // writer runs nothing else meanwhile, so the view stays at the head. Chunks go
  // into the other slot batch by batch; one last write makes the snapshot current.
  wire::SnapshotHeader h;
  h.set_device(device);
  h.set_seq(meta.last());
  h.set_hash(meta.head_hash());
  h.set_time_us(meta.last_time_us());
  const uint32_t slot = 1 - meta.snapshot_slot();
  staging_.erase(device);  // a staging of our own device (restore guard) is moot
  leveldb::WriteBatch batch;
  CAIRN_RETURN_IF_ERROR(ClearSlot(&batch, device, slot));
  std::vector<std::string> expired;
  SnapshotDigester digest;
  wire::SnapshotChunk chunk;
  size_t chunk_bytes = 0;
  uint32_t chunks = 0;
  auto put_chunk = [&]() -> Status {
    batch.Put(layout::SnapshotKey(device, slot, ++chunks), chunk.SerializeAsString());
    chunk.Clear();
    chunk_bytes = 0;
    if (batch.ApproximateSize() < kBatchBytes) return Status::Ok();
    Status s = store_->Write(&batch, options_.sync_writes);
    batch.Clear();
    return s;
  };
  const std::string prefix = layout::KvPrefix(device);
  auto it = store_->NewIterator();
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    std::string d, store, key;
    wire::SnapshotEntry e;
    if (!layout::ParseKvKey(it->key().ToString(), &d, &store, &key) ||
        !e.mutable_entry()->ParseFromArray(it->value().data(),
                                           static_cast<int>(it->value().size()))) {
      return Status::Corruption(store_->path() + ": KV entry of '" + device +
                                "' is damaged");
    }
    if (KvExpired(e.entry(), h.time_us())) {
      expired.push_back(it->key().ToString());
      continue;
    }
    e.set_store(std::move(store));
    e.set_key(std::move(key));
    const size_t n = e.ByteSizeLong();
    if (chunk.entries_size() > 0 && chunk_bytes + n > kMaxSnapshotChunkBytes) {
      CAIRN_RETURN_IF_ERROR(put_chunk());
    }
    chunk_bytes += n + 8;
    digest.Add(e);
    *chunk.add_entries() = std::move(e);
  }
  CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "reading the KV view"));
  it.reset();
  if (chunk.entries_size() > 0) CAIRN_RETURN_IF_ERROR(put_chunk());
  h.set_chunks(chunks);
  h.set_digest(digest.Final());
  h.set_sig(signer->second->Sign(SnapshotSigMessage(h)));

  for (const std::string& key : expired) batch.Delete(key);
  batch.Put(layout::SnapshotKey(device, slot, 0), h.SerializeAsString());
  wire::StreamMeta next = meta;
  MakeCurrent(&batch, h, slot, &next);
  CAIRN_RETURN_IF_ERROR(store_->Write(&batch, options_.sync_writes));
  {
    std::lock_guard<std::mutex> l(mu_);
    streams_.at(device)->last_snapshot_mono_us = options_.clock->MonotonicMicros();
  }
  FinishCommit({{device, next}});
  (void)ClearSlotNow(device, 1 - slot, meta.snapshot_chunks());  // the old one
  return h.seq();
}

// ---------------------------------------------------------------- installing

Result<uint64_t> Journal::DoInstall(Op& op) {
  CAIRN_RETURN_IF_ERROR(Poisoned());
  if (op.stage_id == 0) {  // a whole snapshot in hand: staged at once
    op.stage_id = next_own_stage_++;
    op.snapshot.first_chunk = 1;
  }
  if (Status s = DoStage(op); !s.ok()) {
    // The last part failed: the staging is used up all the same (the caller
    // drops nothing after an install).
    auto it = staging_.find(op.device);
    if (it != staging_.end() && it->second.id == op.stage_id) {
      const uint32_t slot = it->second.slot, chunks = it->second.chunks;
      staging_.erase(it);
      (void)ClearSlotNow(op.device, slot, chunks);
    }
    return s;
  }
  return InstallStaged(op.device, op.cert_der, op.stage_id);
}

Result<uint64_t> Journal::InstallStaged(const std::string& device,
                                        std::string_view cert_der, uint64_t stage_id) {
  auto found = staging_.find(device);
  if (found == staging_.end() || found->second.id != stage_id) {
    return Status::FailedPrecondition("the staging of a snapshot of '" + device +
                                      "' was replaced or dropped");
  }
  const Staging st = found->second;
  const wire::SnapshotHeader& h = st.header;
  // However it ends, the staging is used up: made current, or its chunks deleted.
  auto give_up = [&] {
    staging_.erase(device);
    (void)ClearSlotNow(device, st.slot, st.chunks);
  };
  auto refuse = [&](Status s) -> Result<uint64_t> {
    give_up();
    return s;
  };
  if (st.chunks != h.chunks()) {
    return refuse(Status::InvalidArgument(Name(h) + ": " + std::to_string(st.chunks) +
                                          " of its " + std::to_string(h.chunks()) +
                                          " chunks came"));
  }
  Result<ReplicaStream> start = BeginReplicaOp(device, cert_der);
  if (!start.ok()) return refuse(start.status());
  const std::shared_ptr<const DevicePublicKey> key = std::move(start->key);
  const wire::StreamMeta meta = std::move(start->meta);
  if (st.slot != 1 - meta.snapshot_slot()) {
    // Cannot happen: whatever moves the current snapshot ends every staging of
    // the device first. Refused without touching the slot, which is current.
    staging_.erase(device);
    return Status::FailedPrecondition(Name(h) + " was staged over the current snapshot");
  }
  if (Status s = journal::CheckSnapshotHeader(h, *key); !s.ok()) return refuse(s);
  if (h.seq() <= meta.snapshot()) {
    give_up();
    return meta.snapshot();  // we already have as much
  }
  if (Status s = CheckStagedDigest(h, st.slot); !s.ok()) return refuse(s);
  wire::StreamMeta next = meta;
  next.set_device_cert(key->cert_der());
  if (h.seq() <= meta.last()) {
    // first <= old snapshot + 1 <= h.seq(): the event at its seq is stored.
    if (Status s = CheckSnapshotAgainstEvents(h, meta); !s.ok()) return refuse(s);
    leveldb::WriteBatch batch;
    if (Status s = DropExpired(&batch, device, h.seq(), h.time_us()); !s.ok()) {
      return refuse(s);
    }
    MakeCurrent(&batch, h, st.slot, &next);
    if (Status s = store_->Write(&batch, options_.sync_writes); !s.ok()) {
      staging_.erase(device);
      return Poison(s);  // it may be in: the slot stays for the next open to judge
    }
    staging_.erase(device);
    FinishCommit({{device, next}});
    (void)ClearSlotNow(device, 1 - st.slot, meta.snapshot_chunks());
    return h.seq();
  }
  // The peer is ahead of everything we hold: the snapshot replaces our view.
  // When we hold events (or an older snapshot), nothing shows that they lead
  // to this one, and installing it would delete them: a fork there would go
  // unseen. Kept ours, unless the operator accepted the gap.
  if (meta.last() > 0 && !GapAccepted(device)) {
    return refuse(Status::Gap(
        "a snapshot of '" + device + "' at seq " + std::to_string(h.seq()) +
        " is beyond our head " + std::to_string(meta.last()) +
        " and the events between were not offered, so it cannot be checked against the "
        "events we hold; kept ours (`cairn resync " +
        device + "` accepts it)"));
  }
  // Replacing the events and view takes many batches: the meta says so first
  // (synced), so that an install cut short is finished when the journal opens.
  next.set_installing(h.seq());
  staging_.erase(device);  // the install owns the slot now
  {
    leveldb::WriteBatch batch;
    batch.Put(layout::MetaKey(device), next.SerializeAsString());
    if (Status s = store_->Write(&batch, true); !s.ok()) return Poison(s);
  }
  // From here the stream's reads answer Unavailable (MetaAt) until the end; a
  // failure stops the journal, and the next open finishes the install.
  Result<wire::StreamMeta> done = FinishInstall(device, next);
  if (!done.ok()) return Poison(done.status());
  {
    std::lock_guard<std::mutex> l(mu_);
    accept_gap_.erase(device);  // used: the gap is closed
  }
  FinishCommit({{device, *done}});
  return h.seq();
}

Status Journal::DeleteKeysUnder(const std::string& prefix) {
  leveldb::WriteBatch batch;
  size_t n = 0;
  auto it = store_->NewIterator(nullptr, /*fill_cache=*/false);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    batch.Delete(it->key());
    if (++n % kDeleteBatchKeys == 0) {
      CAIRN_RETURN_IF_ERROR(store_->Write(&batch, options_.sync_writes));
      batch.Clear();
    }
  }
  CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "reading keys to delete"));
  return n % kDeleteBatchKeys == 0 ? Status::Ok()
                                   : store_->Write(&batch, options_.sync_writes);
}

// Each step puts or deletes what the end state needs, so running it again after
// a crash part-way ends the same.
Result<wire::StreamMeta> Journal::FinishInstall(const std::string& device,
                                                wire::StreamMeta meta) {
  const uint32_t slot = 1 - meta.snapshot_slot();
  const uint32_t old_chunks = meta.snapshot_chunks();
  CAIRN_ASSIGN_OR_RETURN(auto header, store_->GetProto<wire::SnapshotHeader>(
                                          layout::SnapshotKey(device, slot, 0)));
  if (!header || header->seq() != meta.installing()) {
    return Status::Corruption(store_->path() + ": the snapshot of '" + device +
                              "' being installed is missing");
  }
  const wire::SnapshotHeader& h = *header;
  CAIRN_RETURN_IF_ERROR(DeleteKeysUnder(layout::EventPrefix(device)));
  CAIRN_RETURN_IF_ERROR(DeleteKeysUnder(layout::KvPrefix(device)));
  leveldb::WriteBatch batch;
  CAIRN_RETURN_IF_ERROR(
      ForEachChunkIn(device, slot, h.chunks(), [&](const wire::SnapshotChunk& chunk) {
        for (const auto& e : chunk.entries()) {
          batch.Put(layout::KvKey(device, e.store(), e.key()),
                    e.entry().SerializeAsString());
        }
        if (batch.ApproximateSize() < kBatchBytes) return Status::Ok();
        Status s = store_->Write(&batch, options_.sync_writes);
        batch.Clear();
        return s;
      }));
  meta.set_first(h.seq() + 1);
  meta.clear_first_prev_hash();
  meta.set_event_bytes(0);
  meta.set_last(h.seq());
  meta.set_head_hash(h.hash());
  meta.set_last_time_us(h.time_us());
  meta.clear_last_sig();
  MakeCurrent(&batch, h, slot, &meta);
  CAIRN_RETURN_IF_ERROR(store_->Write(&batch, options_.sync_writes));
  (void)ClearSlotNow(device, 1 - slot, old_chunks);
  return meta;
}

// At open: an install cut short is finished, when its staged snapshot is whole
// (it was checked before the install began; only lost unsynced writes make it
// fail now). Otherwise the stream is dropped, events, view and snapshots, and is
// fetched again from peers as a new one: before the install it held nothing, or
// nothing the operator meant to keep (`cairn resync`).
Result<std::optional<wire::StreamMeta>> Journal::ResumeInstall(const std::string& device,
                                                               wire::StreamMeta meta) {
  const uint32_t slot = 1 - meta.snapshot_slot();
  CAIRN_ASSIGN_OR_RETURN(auto header, store_->GetProto<wire::SnapshotHeader>(
                                          layout::SnapshotKey(device, slot, 0)));
  Status whole = header && header->seq() == meta.installing()
                     ? CheckStagedDigest(*header, slot)
                     : Status::Corruption("missing");
  if (whole.ok()) {
    CAIRN_ASSIGN_OR_RETURN(wire::StreamMeta done, FinishInstall(device, std::move(meta)));
    return std::optional<wire::StreamMeta>(std::move(done));
  }
  CAIRN_RETURN_IF_ERROR(DeleteKeysUnder(layout::EventPrefix(device)));
  CAIRN_RETURN_IF_ERROR(DeleteKeysUnder(layout::KvPrefix(device)));
  CAIRN_RETURN_IF_ERROR(DeleteKeysUnder(layout::SnapshotPrefix(device)));
  leveldb::WriteBatch batch;
  batch.Delete(layout::MetaKey(device));
  CAIRN_RETURN_IF_ERROR(store_->Write(&batch, true));
  return std::optional<wire::StreamMeta>();
}

// At open: staged chunks that no install owns any more (a transfer cut short)
// are deleted, one seek per device that has snapshot keys.
Status Journal::ClearStaleSlots() {
  std::vector<std::pair<std::string, int>> clear;  // device, slot (-1: both)
  auto it = store_->NewIterator();
  for (it->Seek("s"); it->Valid() && it->key().starts_with("s");) {
    std::string_view k(it->key().data(), it->key().size());
    k.remove_prefix(1);
    std::string_view d;
    if (!GetLengthPrefixed(&k, &d)) break;
    const std::string device(d);
    auto s = streams_.find(device);
    if (s == streams_.end() || s->second->meta.snapshot() == 0) {
      clear.emplace_back(device, -1);
    } else {
      clear.emplace_back(device, static_cast<int>(1 - s->second->meta.snapshot_slot()));
    }
    it->Seek(layout::SnapshotPrefix(device) + std::string(4, '\xff') + '\xff');
  }
  CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "reading snapshot keys"));
  it.reset();
  for (const auto& [device, slot] : clear) {
    if (slot < 0) {
      CAIRN_RETURN_IF_ERROR(DeleteKeysUnder(layout::SnapshotPrefix(device)));
    } else {
      CAIRN_RETURN_IF_ERROR(ClearSlotNow(device, static_cast<uint32_t>(slot)));
    }
  }
  return Status::Ok();
}

Status Journal::CheckSnapshotAgainstEvents(const wire::SnapshotHeader& h,
                                           const wire::StreamMeta& meta) {
  std::string ours = meta.head_hash();
  if (h.seq() != meta.last()) {
    CAIRN_ASSIGN_OR_RETURN(auto stored, store_->GetProto<wire::Record>(
                                            layout::EventKey(h.device(), h.seq())));
    if (!stored)
      return Status::Corruption("event " + std::to_string(h.seq()) + " missing");
    ours = stored->hash();
  }
  if (ours == h.hash()) return Status::Ok();
  wire::ForkProof proof;
  proof.set_device(h.device());
  proof.set_seq(h.seq());
  proof.set_our_hash(ours);
  proof.set_detected_us(options_.clock->NowMicros());
  wire::Record* theirs = proof.add_theirs();
  theirs->set_seq(h.seq());
  theirs->set_hash(h.hash());
  theirs->set_sig(h.sig());
  CAIRN_RETURN_IF_ERROR(StoreForkProof(proof));
  return Status::Fork("fork in '" + h.device() + "' at seq " + std::to_string(h.seq()) +
                      ": a signed snapshot disagrees with our events; kept ours");
}

// Deletes view entries of `device` with rev <= max_rev that have expired at
// `at_us` (all of them when at_us is INT64_MIN).
Status Journal::DropExpired(leveldb::WriteBatch* batch, const std::string& device,
                            uint64_t max_rev, int64_t at_us) {
  const std::string prefix = layout::KvPrefix(device);
  auto it = store_->NewIterator();
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    wire::KvEntry e;
    if (!e.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return Status::Corruption(store_->path() + ": KV entry of '" + device +
                                "' is damaged");
    }
    if (at_us == INT64_MIN || (e.rev() <= max_rev && KvExpired(e, at_us))) {
      batch->Delete(it->key());
    }
  }
  return store_->Convert(it->status(), "reading the KV view");
}

Result<SnapshotData> Journal::ReadSnapshot(std::string_view device) const {
  return ReadSnapshotAt(device, nullptr);
}

Result<SnapshotData> Journal::ReadSnapshotChunks(std::string_view device,
                                                 uint64_t expect_seq, uint32_t first,
                                                 size_t max_bytes) const {
  internal::SnapshotHold hold(store_->db());
  CAIRN_ASSIGN_OR_RETURN(auto current, CurrentSnapshot(device, hold.get()));
  SnapshotData snap;
  snap.header = std::move(current.header);
  snap.first_stored = current.first_stored;
  if (first == 0 || (expect_seq != 0 && snap.header.seq() != expect_seq)) first = 1;
  snap.first_chunk = first;
  const std::string d(device);
  size_t bytes = 0;
  for (uint32_t i = first; i <= snap.header.chunks() && (i == first || bytes < max_bytes);
       ++i) {
    CAIRN_ASSIGN_OR_RETURN(auto chunk,
                           store_->GetProto<wire::SnapshotChunk>(
                               layout::SnapshotKey(device, current.slot, i), hold.get()));
    if (!chunk) {
      return Status::Corruption(store_->path() + ": snapshot chunk " + std::to_string(i) +
                                " of '" + d + "' is missing");
    }
    bytes += chunk->ByteSizeLong();
    snap.chunks.push_back(std::move(*chunk));
  }
  return snap;
}

Result<Journal::CurrentSnap> Journal::CurrentSnapshot(std::string_view device,
                                                      const leveldb::Snapshot* at) const {
  const std::string d(device);
  CAIRN_ASSIGN_OR_RETURN(auto meta, MetaAt(device, at));
  if (!meta || meta->snapshot() == 0) {
    return Status::NotFound("'" + d + "' has no snapshot");
  }
  CurrentSnap out;
  out.slot = meta->snapshot_slot();
  out.first_stored = meta->first();
  CAIRN_ASSIGN_OR_RETURN(auto header, store_->GetProto<wire::SnapshotHeader>(
                                          layout::SnapshotKey(device, out.slot, 0), at));
  if (!header || header->seq() != meta->snapshot()) {
    return Status::Corruption(store_->path() + ": the snapshot header of '" + d +
                              "' is missing or not the one its meta names");
  }
  out.header = std::move(*header);
  return out;
}

Result<SnapshotData> Journal::ReadSnapshotAt(std::string_view device,
                                             const leveldb::Snapshot* at) const {
  std::optional<internal::SnapshotHold> hold;
  if (at == nullptr) at = hold.emplace(store_->db()).get();
  CAIRN_ASSIGN_OR_RETURN(auto current, CurrentSnapshot(device, at));
  SnapshotData snap;
  snap.header = std::move(current.header);
  CAIRN_RETURN_IF_ERROR(ForEachChunkIn(
      std::string(device), current.slot, snap.header.chunks(),
      [&](const wire::SnapshotChunk& chunk) {
        snap.chunks.push_back(chunk);
        return Status::Ok();
      },
      at));
  return snap;
}

}  // namespace cairn::journal
