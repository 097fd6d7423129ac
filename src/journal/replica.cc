// Replication input: records and snapshots of devices we are not the source of.
// Nothing a relay says is trusted: every record is checked back to its device.
#include <future>

#include "base/bytes.h"
#include "base/plant.h"
#include "journal/chain.h"
#include "journal/checks.h"
#include "journal/journal_internal.h"

namespace cairn::journal {

using internal::Group;
using internal::Op;

namespace {

std::string At(const std::string& device, uint64_t seq) {
  return RecordName(device, seq);
}

}  // namespace

// records[i] differs from what we hold at its seq. If their version is validly
// signed, that is a fork: keep ours, store the proof, refuse theirs.
Status Journal::RecordFork(const std::string& device, const DevicePublicKey& key,
                           const wire::StreamMeta& meta,
                           const std::vector<wire::Record>& records, size_t i,
                           const std::string& our_hash) {
  const uint64_t seq = records[i].seq();
  std::string prev;
  if (i > 0) {
    prev = records[i - 1].hash();
  } else if (seq == 1) {
    prev = GenesisHash(device, key.raw());
  } else if (seq - 1 == meta.snapshot()) {
    prev = meta.snapshot_hash();
  } else if (seq == meta.first() && !meta.first_prev_hash().empty()) {
    prev = meta.first_prev_hash();  // its predecessor was deleted by retention
  } else {
    CAIRN_ASSIGN_OR_RETURN(
        auto before, store_->GetProto<wire::Record>(layout::EventKey(device, seq - 1)));
    if (!before) {
      return Status::Corruption(At(device, seq) +
                                " differs from ours and cannot be checked");
    }
    prev = before->hash();
  }
  CAIRN_ASSIGN_OR_RETURN(long signed_at, CheckChain(device, key, prev, records, i));
  if (signed_at < 0) {
    return Status::Corruption(At(device, seq) +
                              " differs from ours and carries no signature");
  }
  wire::ForkProof proof;
  proof.set_device(device);
  proof.set_seq(seq);
  proof.set_our_hash(our_hash);
  proof.set_detected_us(options_.clock->NowMicros());
  for (size_t k = i; k <= static_cast<size_t>(signed_at); ++k)
    *proof.add_theirs() = records[k];
  CAIRN_RETURN_IF_ERROR(StoreForkProof(proof));
  return Status::Fork("fork in '" + device + "' at seq " + std::to_string(seq) +
                      ": a validly signed record differs from ours (ours " +
                      ShortHex(our_hash) + ", theirs " + ShortHex(records[i].hash()) +
                      "); kept ours, proof stored");
}

Result<ApplyOutcome> Journal::Apply(std::string_view device, std::string_view cert_der,
                                    std::vector<wire::Record> records) {
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kApply;
  op->device = std::string(device);
  op->cert_der = std::string(cert_der);
  op->records = std::move(records);
  std::promise<Result<ApplyOutcome>> done;
  auto f = done.get_future();
  op->on_apply = [&done](Result<ApplyOutcome> r) { done.set_value(std::move(r)); };
  Submit(std::move(op), /*may_write_here=*/true);
  return f.get();
}

Result<std::shared_ptr<const DevicePublicKey>> Journal::KeyFor(
    const std::string& device, std::string_view cert_der) {
  std::shared_ptr<const DevicePublicKey> known;
  std::string stored_cert;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = streams_.find(device); it != streams_.end()) {
      known = it->second->key;
      stored_cert = it->second->meta.device_cert();
    }
  }
  if (known && (cert_der.empty() || cert_der == known->cert_der())) return known;
  if (!known && !stored_cert.empty() && cert_der != stored_cert) {
    // Not cached since the restart: the stored certificate is compared with the
    // one offered (below), so an older one never replaces a renewal.
    Result<std::shared_ptr<const DevicePublicKey>> stored =
        options_.ca->VerifyDevice(stored_cert, device);
    if (stored.ok()) known = *stored;
  }
  if (known && (cert_der.empty() || cert_der == known->cert_der())) {
    std::lock_guard<std::mutex> l(mu_);
    if (auto it = streams_.find(device); it != streams_.end()) it->second->key = known;
    return known;
  }
  std::string_view cert = cert_der.empty() ? std::string_view(stored_cert) : cert_der;
  if (cert.empty()) {
    return Status::FailedPrecondition("no certificate known for device '" + device + "'");
  }
  CAIRN_ASSIGN_OR_RETURN(auto key, options_.ca->VerifyDevice(cert, device));
  if (known && known->raw() != key->raw()) {
    return Status::PermissionDenied("certificate for '" + device +
                                    "' carries another key than its stream");
  }
  // The same key certified twice (a renewal): the later certificate is kept, so a
  // peer that still offers the old one never undoes it (records signed after the
  // old one expired verify only with the renewal).
  if (known && known->not_after_us() > key->not_after_us()) return known;
  std::lock_guard<std::mutex> l(mu_);
  if (auto it = streams_.find(device); it != streams_.end()) it->second->key = key;
  return key;
}

// What every replication input starts from: a device we are not the source of,
// its verified key, and its meta (a fresh stream at genesis if we have none).
Result<Journal::ReplicaStream> Journal::BeginReplicaOp(const std::string& device,
                                                       std::string_view cert_der) {
  CAIRN_RETURN_IF_ERROR(ValidateDeviceId(device));
  if (signers_.count(device) && !AppendsHeld(device)) {
    return Status::PermissionDenied("this node is the source of '" + device +
                                    "'; it does not accept its stream from peers");
  }
  ReplicaStream out;
  CAIRN_ASSIGN_OR_RETURN(out.key, KeyFor(device, cert_der));
  std::lock_guard<std::mutex> l(mu_);
  auto it = streams_.find(device);
  if (it != streams_.end() && !it->second->meta.head_hash().empty()) {
    out.meta = it->second->meta;
  } else {
    out.meta.set_first(1);
    out.meta.set_head_hash(GenesisHash(device, out.key->raw()));
  }
  return out;
}

Result<ApplyOutcome> Journal::DoApply(Op& op) {
  CAIRN_RETURN_IF_ERROR(Poisoned());
  const std::string& device = op.device;
  CAIRN_ASSIGN_OR_RETURN(ReplicaStream start, BeginReplicaOp(device, op.cert_der));
  CAIRN_RETURN_IF_ERROR(CheckShape(device, op.records));
  const std::shared_ptr<const DevicePublicKey> key = std::move(start.key);
  wire::StreamMeta meta = std::move(start.meta);
  meta.set_device_cert(key->cert_der());
  ApplyOutcome out;
  out.last = meta.last();
  if (op.records.empty()) return out;

  // Skip what we already hold; a different record at a held seq may be a fork.
  size_t i = 0;
  for (; i < op.records.size() && op.records[i].seq() <= meta.last(); ++i) {
    const wire::Record& r = op.records[i];
    if (r.seq() <= meta.snapshot() && r.seq() < meta.first()) {
      ++out.duplicates;  // compacted into our snapshot; nothing to compare with
      continue;
    }
    std::string ours = meta.head_hash();
    if (r.seq() != meta.last()) {
      CAIRN_ASSIGN_OR_RETURN(
          auto stored, store_->GetProto<wire::Record>(layout::EventKey(device, r.seq())));
      if (!stored)
        return Status::Corruption(At(device, r.seq()) + " is missing from " +
                                  store_->path());
      ours = stored->hash();
    }
    if (ours == r.hash()) {
      ++out.duplicates;
      continue;
    }
    return RecordFork(device, *key, meta, op.records, i, ours);
  }
  if (i == op.records.size()) return out;
  if (op.records[i].seq() != meta.last() + 1) {
    return Status::FailedPrecondition("gap in '" + device + "': we hold up to " +
                                      std::to_string(meta.last()) + ", got " +
                                      std::to_string(op.records[i].seq()));
  }
  if (!plant::On("skip-chain-check") &&
      ChainHashOf(meta.head_hash(), device, op.records[i]) != op.records[i].hash()) {
    // Either forged, or the source wrote another history below this chunk; only
    // records from where the histories part can tell (see RecordFork).
    return Status::Diverged(At(device, op.records[i].seq()) +
                            " does not chain to the record before it: forged, or a fork "
                            "below it");
  }
  CAIRN_ASSIGN_OR_RETURN(long signed_at,
                         CheckChain(device, *key, meta.head_hash(), op.records, i));
  if (signed_at < 0) {
    out.pending = op.records.size() - i;
    return out;
  }
  Group group(store_.get());
  auto& recs = group.records[device];
  for (size_t k = i; k <= static_cast<size_t>(signed_at); ++k) {
    wire::Record r = std::move(op.records[k]);
    // Only the signature we verified is kept: a relay never serves an unchecked one.
    if (k != static_cast<size_t>(signed_at)) r.clear_sig();
    CAIRN_RETURN_IF_ERROR(group.kv.ApplyEvent(device, r));
    meta.set_last(r.seq());
    meta.set_head_hash(r.hash());
    meta.set_last_time_us(r.time_us());
    meta.set_last_sig(r.sig());
    recs.push_back(internal::ToPending(std::move(r), group));
  }
  out.applied = recs.size();
  out.pending = op.records.size() - static_cast<size_t>(signed_at) - 1;
  out.last = meta.last();
  group.metas[device] = meta;
  group.keys[device] = key;
  internal::EncodeGroup(group);
  CAIRN_RETURN_IF_ERROR(store_->Write(&group.batch, options_.sync_writes));
  if (out.applied > 0) {
    std::lock_guard<std::mutex> l(mu_);
    accept_gap_.erase(device);  // the events came after all: no gap to accept
  }
  FinishCommit(group.metas, &group);
  return out;
}

Result<uint64_t> Journal::RecordOwnFork(const std::string& device,
                                        const std::vector<wire::Record>& theirs) {
  std::shared_ptr<const DevicePublicKey> key;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = signers_.find(device);
    if (it == signers_.end()) {
      return Status::PermissionDenied("this node is not the source of '" + device + "'");
    }
    key = it->second->public_key();
  }
  if (theirs.empty()) return Status::InvalidArgument("a fork notice without records");
  CAIRN_RETURN_IF_ERROR(CheckShape(device, theirs));
  CAIRN_ASSIGN_OR_RETURN(auto meta, MetaAt(device, nullptr));
  const uint64_t first = theirs.front().seq();
  if (!meta || first > meta->last()) return uint64_t{0};
  std::string prev;
  if (first == 1) {
    prev = GenesisHash(device, key->raw());
  } else if (first - 1 == meta->snapshot()) {
    prev = meta->snapshot_hash();
  } else if (first == meta->first() && !meta->first_prev_hash().empty()) {
    prev = meta->first_prev_hash();
  } else {
    CAIRN_ASSIGN_OR_RETURN(
        auto before, store_->GetProto<wire::Record>(layout::EventKey(device, first - 1)));
    if (!before) return uint64_t{0};  // compacted: nothing to chain from
    prev = before->hash();
  }
  CAIRN_ASSIGN_OR_RETURN(long signed_at, CheckChain(device, *key, prev, theirs, 0));
  if (signed_at < 0) {
    return Status::Corruption("a fork notice for '" + device + "' carries no signature");
  }
  for (size_t k = 0; k <= static_cast<size_t>(signed_at); ++k) {
    const uint64_t seq = theirs[k].seq();
    if (seq > meta->last()) break;
    CAIRN_ASSIGN_OR_RETURN(auto ours,
                           store_->GetProto<wire::Record>(layout::EventKey(device, seq)));
    if (!ours || ours->hash() == theirs[k].hash()) continue;
    wire::ForkProof proof;
    proof.set_device(device);
    proof.set_seq(seq);
    proof.set_our_hash(ours->hash());
    proof.set_detected_us(options_.clock->NowMicros());
    for (size_t j = k; j <= static_cast<size_t>(signed_at); ++j)
      *proof.add_theirs() = theirs[j];
    CAIRN_RETURN_IF_ERROR(StoreForkProof(proof));
    return seq;
  }
  return uint64_t{0};
}

}  // namespace cairn::journal
