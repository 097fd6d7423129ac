// StreamVerifier: checks one device stream as it arrives from a peer while
// storing nothing but the head it has verified, so a reader without a journal
// (`cairn tail --peer`) accepts exactly what Journal::Apply and InstallSnapshot
// would: the device certificate against the CA with CN = device id, every chain
// link, the signature that closes each chunk, and snapshots' digests and
// signatures. The checks are the journal's own (checks.h).
//
// Reading from seq `from` > 1 leaves the first record nothing verified to chain
// to, so the reader asks for one record more (subscribe_from() = from - 1): that
// record, or a snapshot at or after it, is the anchor. The anchor's hash is
// authenticated like every other one, by the signature that closes its chunk
// through the chain; its own content is not, so it is never handed out.
//
//   StreamVerifier v(ca, "dev-a", 10);
//   subscribe(device, v.subscribe_from());
//   v.SetCert(header.device_cert());            // StreamHeader
//   auto fresh = v.AcceptSnapshot(snapshot);     // true: print it
//   auto records = v.Accept(std::move(events));  // verified, seq >= 10
//
// Thread-safety: none; one owner. The CertAuthority is shared and immutable.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "journal/identity.h"
#include "journal/journal.h"

namespace cairn::journal {

class StreamVerifier {
 public:
  // Records waiting for a signature, at most (the journal's signed-chunk bound).
  static constexpr size_t kMaxPendingBytes = 16u << 20;

  // REQUIRES: from >= 1.
  StreamVerifier(std::shared_ptr<const CertAuthority> ca, std::string device,
                 uint64_t from);

  // The seq to ask the peer for: from - 1 (the anchor), or 1.
  uint64_t subscribe_from() const { return from_ > 1 ? from_ - 1 : 1; }
  // The verified head: the seq of the last record or snapshot accepted, 0 before.
  uint64_t last() const { return head_seq_; }

  // The certificate of a StreamHeader: issued by the CA to CN = device. A later
  // certificate must carry the same key.
  Status SetCert(std::string_view cert_der);

  // A complete snapshot. True when it moved the verified head forward (the
  // reader has not seen what it covers); false for a newer snapshot of events
  // already accepted (the source compacted).
  Result<bool> AcceptSnapshot(const SnapshotData& snap);

  // The next records of the stream, in order. Returns the ones a verified
  // signature covers, from `from` on; records after the last signature wait for
  // the next call (at most kMaxPendingBytes of them).
  Result<std::vector<wire::Record>> Accept(std::vector<wire::Record> records);

 private:
  Result<long> CheckRun(const std::vector<wire::Record>& all) const;

  std::shared_ptr<const CertAuthority> ca_;
  std::string device_;
  uint64_t from_;
  std::shared_ptr<const DevicePublicKey> key_;
  bool anchored_ = false;  // head_hash_ is verified (or genesis)
  uint64_t head_seq_ = 0;
  std::string head_hash_;
  std::vector<wire::Record> pending_;
};

}  // namespace cairn::journal
