// Snapshots: the signed KV view of a device at a seq. Making one at the source,
// or installing a verified one from a peer, keeps the events at or below it:
// retention (retention.cc) decides when they go. Only a snapshot beyond our head
// replaces what we hold, and only when nothing of ours would be lost unchecked.
#include <future>

#include "journal/chain.h"
#include "journal/checks.h"
#include "journal/journal_internal.h"

namespace cairn::journal {

using internal::Op;

namespace {

std::unique_ptr<Op> SeqOp(Op::Kind kind, std::promise<Result<uint64_t>>* done) {
  auto op = std::make_unique<Op>();
  op->kind = kind;
  op->on_seq = [done](Result<uint64_t> r) { done->set_value(std::move(r)); };
  return op;
}

void PutSnapshot(leveldb::WriteBatch* batch, const SnapshotData& snap) {
  const std::string& device = snap.header.device();
  batch->Put(layout::SnapshotKey(device, 0), snap.header.SerializeAsString());
  for (size_t i = 0; i < snap.chunks.size(); ++i) {
    batch->Put(layout::SnapshotKey(device, static_cast<uint32_t>(i + 1)),
               snap.chunks[i].SerializeAsString());
  }
  for (size_t i = 0; i < snap.encoded_chunks.size(); ++i) {  // checked: they parse
    batch->Put(layout::SnapshotKey(device, static_cast<uint32_t>(i + 1)),
               snap.encoded_chunks[i]);
  }
}

// Puts `snap` in place of the stream's previous snapshot (deleting the old
// one's chunks past the new count) and records it in `next` (the stream meta,
// also put). Events stay.
void SwapIn(leveldb::WriteBatch* batch, const SnapshotData& snap,
            const wire::StreamMeta& old, wire::StreamMeta* next) {
  const wire::SnapshotHeader& h = snap.header;
  PutSnapshot(batch, snap);
  for (uint32_t c = h.chunks() + 1; c <= old.snapshot_chunks(); ++c) {
    batch->Delete(layout::SnapshotKey(h.device(), c));
  }
  next->set_snapshot(h.seq());
  next->set_snapshot_chunks(h.chunks());
  next->set_snapshot_hash(h.hash());
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

Result<uint64_t> Journal::InstallSnapshot(std::string_view cert_der,
                                          SnapshotData snapshot) {
  std::promise<Result<uint64_t>> done;
  auto f = done.get_future();
  auto op = SeqOp(Op::Kind::kInstall, &done);
  op->device = snapshot.header.device();
  op->cert_der = std::string(cert_der);
  op->snapshot = std::move(snapshot);
  Submit(std::move(op), /*may_write_here=*/true);
  return f.get();
}

Status Journal::CheckSnapshotHeader(std::string_view cert_der,
                                    const wire::SnapshotHeader& h) {
  CAIRN_ASSIGN_OR_RETURN(ReplicaStream start, BeginReplicaOp(h.device(), cert_der));
  return journal::CheckSnapshotHeader(h, *start.key);
}

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
  // function of the stream alone, the same on every node that rebuilds it.
  SnapshotData snap;
  wire::SnapshotHeader& h = snap.header;
  h.set_device(device);
  h.set_seq(meta.last());
  h.set_hash(meta.head_hash());
  h.set_time_us(meta.last_time_us());
  leveldb::WriteBatch batch;
  SnapshotDigester digest;
  size_t chunk_bytes = 0;
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
      batch.Delete(it->key());
      continue;
    }
    e.set_store(std::move(store));
    e.set_key(std::move(key));
    const size_t n = e.ByteSizeLong();
    if (snap.chunks.empty() || chunk_bytes + n > kMaxSnapshotChunkBytes) {
      snap.chunks.emplace_back();
      chunk_bytes = 0;
    }
    chunk_bytes += n + 8;
    digest.Add(e);
    *snap.chunks.back().add_entries() = std::move(e);
  }
  CAIRN_RETURN_IF_ERROR(store_->Convert(it->status(), "reading the KV view"));
  h.set_chunks(static_cast<uint32_t>(snap.chunks.size()));
  h.set_digest(digest.Final());
  h.set_sig(signer->second->Sign(SnapshotSigMessage(h)));

  wire::StreamMeta next = meta;
  SwapIn(&batch, snap, meta, &next);
  CAIRN_RETURN_IF_ERROR(store_->Write(&batch, options_.sync_writes));
  {
    std::lock_guard<std::mutex> l(mu_);
    streams_.at(device)->last_snapshot_mono_us = options_.clock->MonotonicMicros();
  }
  FinishCommit({{device, next}});
  return h.seq();
}

Result<uint64_t> Journal::DoInstall(Op& op) {
  CAIRN_RETURN_IF_ERROR(Poisoned());
  const SnapshotData& snap = op.snapshot;
  const wire::SnapshotHeader& h = snap.header;
  const std::string& device = h.device();
  CAIRN_ASSIGN_OR_RETURN(ReplicaStream start, BeginReplicaOp(device, op.cert_der));
  const std::shared_ptr<const DevicePublicKey> key = std::move(start.key);
  const wire::StreamMeta meta = std::move(start.meta);
  CAIRN_RETURN_IF_ERROR(CheckSnapshot(snap, *key));
  if (h.seq() <= meta.snapshot()) return meta.snapshot();  // we already have as much
  leveldb::WriteBatch batch;
  wire::StreamMeta next = meta;
  next.set_device_cert(key->cert_der());
  if (h.seq() <= meta.last()) {
    // first <= old snapshot + 1 <= h.seq(): the event at its seq is stored.
    CAIRN_RETURN_IF_ERROR(CheckSnapshotAgainstEvents(h, meta));
    CAIRN_RETURN_IF_ERROR(DropExpired(&batch, device, h.seq(), h.time_us()));
  } else {
    // The peer is ahead of everything we hold: the snapshot replaces our view.
    // When we hold events (or an older snapshot), nothing shows that they lead
    // to this one, and installing it would delete them: a fork there would go
    // unseen. Kept ours, unless the operator accepted the gap.
    if (meta.last() > 0 && !GapAccepted(device)) {
      return Status::Gap("a snapshot of '" + device + "' at seq " +
                         std::to_string(h.seq()) + " is beyond our head " +
                         std::to_string(meta.last()) +
                         " and the events between were not offered, so it cannot be "
                         "checked against the events we hold; kept ours (`cairn resync " +
                         device + "` accepts it)");
    }
    for (uint64_t s = meta.first(); s <= meta.last(); ++s) {
      batch.Delete(layout::EventKey(device, s));
    }
    next.set_first(h.seq() + 1);
    next.clear_first_prev_hash();
    next.set_event_bytes(0);
    CAIRN_RETURN_IF_ERROR(DropExpired(&batch, device, UINT64_MAX, INT64_MIN));
    CAIRN_RETURN_IF_ERROR(
        ForEachSnapshotChunk(snap, [&](const wire::SnapshotChunk& chunk) {
          for (const auto& e : chunk.entries()) {
            batch.Put(layout::KvKey(device, e.store(), e.key()),
                      e.entry().SerializeAsString());
          }
          return Status::Ok();
        }));
    next.set_last(h.seq());
    next.set_head_hash(h.hash());
    next.set_last_time_us(h.time_us());
    next.clear_last_sig();
  }
  SwapIn(&batch, snap, meta, &next);
  CAIRN_RETURN_IF_ERROR(store_->Write(&batch, options_.sync_writes));
  if (h.seq() > meta.last()) {
    std::lock_guard<std::mutex> l(mu_);
    accept_gap_.erase(device);  // used: the gap is closed
  }
  FinishCommit({{device, next}});
  return h.seq();
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
  SnapshotData snap;
  CAIRN_ASSIGN_OR_RETURN(auto header, store_->GetProto<wire::SnapshotHeader>(
                                          layout::SnapshotKey(device, 0), hold.get()));
  if (!header) return Status::NotFound("'" + std::string(device) + "' has no snapshot");
  snap.header = std::move(*header);
  CAIRN_ASSIGN_OR_RETURN(auto meta, MetaAt(device, hold.get()));
  if (meta) snap.first_stored = meta->first();
  if (first == 0 || (expect_seq != 0 && snap.header.seq() != expect_seq)) first = 1;
  snap.first_chunk = first;
  size_t bytes = 0;
  for (uint32_t i = first; i <= snap.header.chunks() && (i == first || bytes < max_bytes);
       ++i) {
    CAIRN_ASSIGN_OR_RETURN(auto chunk, store_->GetProto<wire::SnapshotChunk>(
                                           layout::SnapshotKey(device, i), hold.get()));
    if (!chunk) {
      return Status::Corruption(store_->path() + ": snapshot chunk " + std::to_string(i) +
                                " of '" + std::string(device) + "' is missing");
    }
    bytes += chunk->ByteSizeLong();
    snap.chunks.push_back(std::move(*chunk));
  }
  return snap;
}

Result<SnapshotData> Journal::ReadSnapshotAt(std::string_view device,
                                             const leveldb::Snapshot* at) const {
  SnapshotData snap;
  CAIRN_ASSIGN_OR_RETURN(auto header, store_->GetProto<wire::SnapshotHeader>(
                                          layout::SnapshotKey(device, 0), at));
  if (!header) return Status::NotFound("'" + std::string(device) + "' has no snapshot");
  snap.header = std::move(*header);
  for (uint32_t i = 1; i <= snap.header.chunks(); ++i) {
    CAIRN_ASSIGN_OR_RETURN(auto chunk, store_->GetProto<wire::SnapshotChunk>(
                                           layout::SnapshotKey(device, i), at));
    if (!chunk) {
      return Status::Corruption(store_->path() + ": snapshot chunk " + std::to_string(i) +
                                " of '" + std::string(device) + "' is missing");
    }
    snap.chunks.push_back(std::move(*chunk));
  }
  return snap;
}

}  // namespace cairn::journal
