// Catalogue summaries: the first catalogue between two nodes that already agree
// costs a few KiB, not an entry per device (cairn.proto, CatalogueSummary).
//
// The entries a node offers a peer fall into 2^bits buckets by the first bits of
// SHA-256(device id). A bucket is summed up as the sum, modulo 2^64, of a 64-bit
// digest of each entry's device, `last` and groups. The receiver sums the
// devices it stores and follows the same way: a bucket whose sums agree holds the
// same devices at the same heads on both sides, and the receiver takes its own
// entries for it; it asks for the others (CatalogueWant), whose entries come in
// parts like a full catalogue. Sums add up, so a node keeps 4,096 fine buckets
// current as its streams change and folds them to any coarser count in O(4,096).
//
// Left out of the digest: `first` and `snapshot`, which differ with retention
// and matter only for a peer ahead of us (a delta names that), and `source`:
// only the node named like a device is its source, and a summary carries that
// one entry beside the sums. A stream that holds nothing (no event, no
// snapshot) adds nothing to its bucket: no peer stores it, and the delta of its
// first event names it.
//
// Thread-safety: values and pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sync/interest.h"

namespace cairn::sync {

inline constexpr int kSummaryFineBits = 12;

// A stored stream's place in the summaries.
struct SummaryKey {
  uint32_t fine = 0;  // its bucket among 2^kSummaryFineBits (depends on the id alone)
  uint64_t digest = 0;
};

// The bucket of `device` among 2^kSummaryFineBits.
uint32_t FineBucket(std::string_view device);
// The digest of a stream at `last` naming `groups` (fine: FineBucket(device)).
SummaryKey KeyOf(std::string_view device, uint32_t fine, uint64_t last,
                 const std::vector<std::string>& groups);

// Sums of digests per fine bucket, and how many were added.
class BucketSums {
 public:
  BucketSums() : sums_(size_t{1} << kSummaryFineBits, 0) {}
  void Add(const SummaryKey& k) {
    sums_[k.fine] += k.digest;
    ++count_;
  }
  void Remove(const SummaryKey& k) {
    sums_[k.fine] -= k.digest;
    --count_;
  }
  size_t count() const { return count_; }
  // The sums over 2^bits buckets (bits <= kSummaryFineBits).
  std::vector<uint64_t> Fold(int bits) const;

 private:
  std::vector<uint64_t> sums_;
  size_t count_ = 0;
};

// The bucket count a sender picks for `entries`: about 64 entries per bucket
// (256 buckets, 2 KiB of sums, at 10,000 devices), at most 2^kSummaryFineBits.
int SummaryBits(size_t entries);
// The bucket of a fine bucket among 2^bits.
inline uint32_t Coarse(uint32_t fine, int bits) {
  return fine >> (kSummaryFineBits - bits);
}
// Names the interest a summary was cut to, so that a receiver whose interest the
// sender had not heard yet ignores it (another follows).
uint64_t InterestDigest(const Interest& interest);

}  // namespace cairn::sync
