#include "journal/stream_verifier.h"

#include <utility>

#include "base/check.h"
#include "journal/chain.h"
#include "journal/checks.h"

namespace cairn::journal {

StreamVerifier::StreamVerifier(std::shared_ptr<const CertAuthority> ca,
                               std::string device, uint64_t from)
    : ca_(std::move(ca)), device_(std::move(device)), from_(from) {
  CHECK(ca_ != nullptr && from_ >= 1);
}

Status StreamVerifier::SetCert(std::string_view cert_der) {
  if (key_ && cert_der == key_->cert_der()) return Status::Ok();
  CAIRN_ASSIGN_OR_RETURN(auto key, ca_->VerifyDevice(cert_der, device_));
  if (key_ && key_->raw() != key->raw()) {
    return Status::PermissionDenied("certificate for '" + device_ +
                                    "' carries another key than its stream");
  }
  key_ = std::move(key);
  if (from_ == 1 && !anchored_) {  // the whole stream: it chains from genesis
    anchored_ = true;
    head_hash_ = GenesisHash(device_, key_->raw());
  }
  return Status::Ok();
}

Result<bool> StreamVerifier::AcceptSnapshot(const SnapshotData& snap) {
  const wire::SnapshotHeader& h = snap.header;
  if (!key_) {
    return Status::FailedPrecondition("snapshot of '" + device_ +
                                      "' before its certificate");
  }
  if (h.device() != device_) {
    return Status::InvalidArgument("snapshot of '" + h.device() + "' in the stream of '" +
                                   device_ + "'");
  }
  CAIRN_RETURN_IF_ERROR(CheckSnapshot(snap, *key_));
  if (anchored_ && h.seq() <= head_seq_) {
    if (h.seq() == head_seq_ && h.hash() != head_hash_) {
      return Status::Corruption("snapshot of '" + device_ + "' at " +
                                std::to_string(h.seq()) +
                                " disagrees with the events before it (a fork)");
    }
    return false;
  }
  if (h.seq() + 1 < from_) {
    return Status::InvalidArgument("snapshot of '" + device_ + "' at " +
                                   std::to_string(h.seq()) + " is older than asked for");
  }
  anchored_ = true;
  head_seq_ = h.seq();
  head_hash_ = h.hash();
  pending_.clear();
  return true;
}

// Checks a run that starts right after the head (or at the anchor); returns the
// index of its last signed record, -1 when none is signed.
Result<long> StreamVerifier::CheckRun(const std::vector<wire::Record>& all) const {
  CAIRN_RETURN_IF_ERROR(CheckShape(device_, all));
  const uint64_t first = all.front().seq();
  if (anchored_) {
    if (first != head_seq_ + 1) {
      return Status::InvalidArgument(
          RecordName(device_, first) + " does not follow the verified head " +
          std::to_string(head_seq_) + " (a gap or reordering)");
    }
    return CheckChain(device_, *key_, head_hash_, all, 0);
  }
  if (first != subscribe_from()) {
    return Status::InvalidArgument(RecordName(device_, first) +
                                   " came first; asked for " +
                                   std::to_string(subscribe_from()));
  }
  CAIRN_ASSIGN_OR_RETURN(long signed_at,
                         CheckChain(device_, *key_, all[0].hash(), all, 1));
  if (signed_at < 0 && !all[0].sig().empty()) {  // the anchor alone closes a chunk
    if (!key_->Verify(EventSigMessage(device_, first, all[0].hash()), all[0].sig())) {
      return Status::Corruption(RecordName(device_, first) +
                                " carries a signature that does not verify with the "
                                "device key");
    }
    signed_at = 0;
  }
  return signed_at;
}

Result<std::vector<wire::Record>> StreamVerifier::Accept(
    std::vector<wire::Record> records) {
  std::vector<wire::Record> out;
  if (records.empty()) return out;
  if (!key_) {
    return Status::FailedPrecondition("records of '" + device_ +
                                      "' before its certificate");
  }
  std::vector<wire::Record> all = std::move(pending_);
  pending_.clear();
  for (auto& r : records) all.push_back(std::move(r));
  CAIRN_ASSIGN_OR_RETURN(long signed_at, CheckRun(all));
  if (signed_at < 0) {
    size_t bytes = 0;
    for (const auto& r : all) bytes += r.ByteSizeLong();
    if (bytes > kMaxPendingBytes) {
      return Status::ResourceExhausted("no signed record of '" + device_ + "' in " +
                                       std::to_string(kMaxPendingBytes >> 20) + " MiB");
    }
    pending_ = std::move(all);
    return out;
  }
  const size_t end = static_cast<size_t>(signed_at) + 1;
  anchored_ = true;
  head_seq_ = all[end - 1].seq();
  head_hash_ = all[end - 1].hash();
  for (size_t k = 0; k < end; ++k) {
    if (all[k].seq() >= from_) out.push_back(std::move(all[k]));
  }
  pending_.assign(std::make_move_iterator(all.begin() + static_cast<long>(end)),
                  std::make_move_iterator(all.end()));
  return out;
}

}  // namespace cairn::journal
