#include "journal/checks.h"

#include "base/plant.h"
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
  if (plant::On("skip-chain-check")) {
    for (size_t i = from; i < records.size(); ++i) {
      if (!records[i].sig().empty()) signed_at = static_cast<long>(i);
    }
    return signed_at;
  }
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
    // Valid when signed: the signer signs only within its certificate's validity,
    // so a record signed later was signed by a key whose certificate had ended.
    if (r.time_us() > key.not_after_us()) {
      return Status::PermissionDenied(
          RecordName(device, r.seq()) +
          " was signed after its device certificate expired (" +
          key.ValidAt(r.time_us()).message() + ")");
    }
  }
  return signed_at;
}

namespace {

std::string SnapshotName(const wire::SnapshotHeader& h) {
  return "snapshot of '" + h.device() + "' at " + std::to_string(h.seq());
}

}  // namespace

Status ForEachSnapshotChunk(const SnapshotData& snap,
                            const std::function<Status(const wire::SnapshotChunk&)>& fn) {
  const std::string what = SnapshotName(snap.header);
  if (snap.encoded_chunks.empty()) {
    for (const auto& chunk : snap.chunks) {
      if (chunk.ByteSizeLong() > kMaxChunkWireBytes) {
        return Status::InvalidArgument(what + " has a chunk over the 1 MiB limit");
      }
      CAIRN_RETURN_IF_ERROR(fn(chunk));
    }
    return Status::Ok();
  }
  wire::SnapshotChunk chunk;
  for (const std::string& bytes : snap.encoded_chunks) {
    if (bytes.size() > kMaxChunkWireBytes) {
      return Status::InvalidArgument(what + " has a chunk over the 1 MiB limit");
    }
    if (!chunk.ParseFromString(bytes)) {
      return Status::InvalidArgument(what + " has a chunk that does not parse");
    }
    CAIRN_RETURN_IF_ERROR(fn(chunk));
  }
  return Status::Ok();
}

Status CheckSnapshotHeader(const wire::SnapshotHeader& h, const DevicePublicKey& key) {
  const std::string what = SnapshotName(h);
  if (h.seq() == 0 || h.hash().size() != kHashBytes || h.digest().size() != kHashBytes ||
      h.chunks() > kMaxSnapshotChunks) {
    return Status::InvalidArgument(what + " is malformed");
  }
  if (!key.Verify(SnapshotSigMessage(h), h.sig())) {
    return Status::Corruption(what + ": signature does not verify with the device key");
  }
  return Status::Ok();
}

Status CheckSnapshot(const SnapshotData& snap, const DevicePublicKey& key) {
  const wire::SnapshotHeader& h = snap.header;
  const std::string what = SnapshotName(h);
  if (h.seq() == 0 || h.hash().size() != kHashBytes || h.chunks() != snap.chunk_count()) {
    return Status::InvalidArgument(what + " is malformed");
  }
  SnapshotDigester digest;
  CAIRN_RETURN_IF_ERROR(ForEachSnapshotChunk(snap, [&](const wire::SnapshotChunk& chunk) {
    for (const auto& e : chunk.entries()) digest.Add(e);
    return Status::Ok();
  }));
  if (digest.Final() != h.digest()) {
    return Status::Corruption(what + ": entries do not match the signed digest");
  }
  if (!key.Verify(SnapshotSigMessage(h), h.sig())) {
    return Status::Corruption(what + ": signature does not verify with the device key");
  }
  return Status::Ok();
}

}  // namespace cairn::journal
