// Verify: re-checks a stored stream end to end, trusting nothing but the CA.
#include "journal/chain.h"
#include "journal/checks.h"
#include "journal/journal_internal.h"

namespace cairn::journal {

Status Journal::Verify(std::string_view device) const {
  const std::string name = "'" + std::string(device) + "'";
  internal::SnapshotHold hold(store_->db());
  CAIRN_ASSIGN_OR_RETURN(auto meta, MetaAt(device, hold.get()));
  if (!meta) {
    // A device whose key we hold but that has no event yet: nothing to check.
    if (Stream(device).ok()) return Status::Ok();
    return Status::NotFound("no stream for device " + name);
  }
  CAIRN_ASSIGN_OR_RETURN(auto key,
                         options_.ca->VerifyDevice(meta->device_cert(), device));
  // The hash the first stored event must chain from: genesis, the snapshot's, or
  // the one retention kept when it deleted the events below (first_prev_hash;
  // empty in a store trimmed before it was kept: then the chain from the first
  // stored event up to the signed snapshot hash still binds them all).
  std::string prev = meta->first_prev_hash();
  if (meta->first() == 1) prev = GenesisHash(device, key->raw());
  if (meta->snapshot() > 0) {
    CAIRN_ASSIGN_OR_RETURN(SnapshotData snap, ReadSnapshotAt(device, hold.get()));
    CAIRN_RETURN_IF_ERROR(CheckSnapshot(snap, *key));
    if (snap.header.seq() != meta->snapshot() ||
        snap.header.hash() != meta->snapshot_hash()) {
      return Status::Corruption(name +
                                ": stored snapshot does not match the stream meta");
    }
    if (meta->first() == meta->snapshot() + 1) prev = snap.header.hash();
  }
  if (meta->first() > meta->snapshot() + 1) {
    return Status::Corruption(
        name + ": first stored event " + std::to_string(meta->first()) +
        " does not follow the snapshot at " + std::to_string(meta->snapshot()));
  }
  const wire::Record* last = nullptr;
  std::vector<wire::Record> records;
  for (uint64_t from = meta->first(); from <= meta->last();) {
    CAIRN_ASSIGN_OR_RETURN(
        records, ReadAt(device, from, meta->last(), 4u << 20, false, hold.get()));
    for (const auto& r : records) {
      if (!prev.empty() && ChainHashOf(prev, device, r) != r.hash()) {
        return Status::Corruption(name + ": event " + std::to_string(r.seq()) +
                                  " does not chain");
      }
      if (!r.sig().empty() &&
          !key->Verify(EventSigMessage(device, r.seq(), r.hash()), r.sig())) {
        return Status::Corruption(name + ": event " + std::to_string(r.seq()) +
                                  " has a bad signature");
      }
      if (r.seq() == meta->snapshot() && r.hash() != meta->snapshot_hash()) {
        return Status::Corruption(name + ": the snapshot at " + std::to_string(r.seq()) +
                                  " does not match the event stored there");
      }
      prev = r.hash();
    }
    last = &records.back();
    from = last->seq() + 1;
  }
  if (prev != meta->head_hash()) return Status::Corruption(name + ": head hash mismatch");
  if (last != nullptr && last->sig().empty()) {
    return Status::Corruption(name + ": the head event is not signed");
  }
  CAIRN_ASSIGN_OR_RETURN(auto kept, KeptView(device));
  CAIRN_ASSIGN_OR_RETURN(auto rebuilt, RebuildView(device));
  if (kept != rebuilt) {
    return Status::Corruption(
        name + ": KV view differs from its rebuild from snapshot + events");
  }
  return Status::Ok();
}

}  // namespace cairn::journal
