#include "journal/checks.h"

#include "journal/chain.h"

namespace cairn::journal {

std::string RecordName(const std::string& device, uint64_t seq) {
  return "record " + std::to_string(seq) + " of '" + device + "'";
}

Status CheckShape(const std::string& device, const std::vector<wire::Record>& records) {
  for (size_t i = 0; i < records.size(); ++i) {
    const wire::Record& r = records[i];
    if (i > 0 && r.seq() != records[i - 1].seq() + 1) {
      return Status::InvalidArgument(RecordName(device, r.seq()) + " follows " +
                                     std::to_string(records[i - 1].seq()) +
                                     ": records are out of order or have a gap");
    }
    if (r.seq() == 0 || r.hash().size() != kHashBytes) {
      return Status::InvalidArgument(RecordName(device, r.seq()) + " is malformed");
    }
    if (r.type().empty() || r.type().size() > kMaxTypeBytes ||
        r.payload().size() > kMaxPayloadBytes) {
      return Status::InvalidArgument(RecordName(device, r.seq()) +
                                     " exceeds the record limits");
    }
  }
  return Status::Ok();
}

Result<long> CheckChain(const std::string& device, const DevicePublicKey& key,
                        std::string prev, const std::vector<wire::Record>& records,
                        size_t from) {
  long signed_at = -1;
  for (size_t i = from; i < records.size(); ++i) {
    const wire::Record& r = records[i];
    if (ChainHashOf(prev, device, r) != r.hash()) {
      return Status::Corruption(RecordName(device, r.seq()) +
                                " does not chain to the record before it (forged or "
                                "reordered)");
    }
    prev = r.hash();
    if (!r.sig().empty()) signed_at = static_cast<long>(i);
  }
  if (signed_at >= 0) {
    const wire::Record& r = records[static_cast<size_t>(signed_at)];
    if (!key.Verify(EventSigMessage(device, r.seq(), r.hash()), r.sig())) {
      return Status::Corruption(RecordName(device, r.seq()) +
                                " carries a signature that does not verify with the "
                                "device key");
    }
  }
  return signed_at;
}

Status CheckSnapshot(const SnapshotData& snap, const DevicePublicKey& key) {
  const wire::SnapshotHeader& h = snap.header;
  const std::string what =
      "snapshot of '" + h.device() + "' at " + std::to_string(h.seq());
  if (h.seq() == 0 || h.hash().size() != kHashBytes || h.chunks() != snap.chunks.size()) {
    return Status::InvalidArgument(what + " is malformed");
  }
  SnapshotDigester digest;
  for (const auto& chunk : snap.chunks) {
    if (chunk.ByteSizeLong() > kMaxSnapshotChunkBytes + (64u << 10)) {
      return Status::InvalidArgument(what + " has a chunk over the 1 MiB limit");
    }
    for (const auto& e : chunk.entries()) digest.Add(e);
  }
  if (digest.Final() != h.digest()) {
    return Status::Corruption(what + ": entries do not match the signed digest");
  }
  if (!key.Verify(SnapshotSigMessage(h), h.sig())) {
    return Status::Corruption(what + ": signature does not verify with the device key");
  }
  return Status::Ok();
}

}  // namespace cairn::journal
