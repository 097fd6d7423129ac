#include "sync/summary.h"

#include <cstring>

#include "journal/chain.h"

namespace cairn::sync {
namespace {

uint64_t First64(const char digest[journal::kHashBytes]) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(digest[i]);
  return v;
}

}  // namespace

uint32_t FineBucket(std::string_view device) {
  journal::Sha256 sha;
  sha.Update(device);
  char out[journal::kHashBytes];
  sha.Final(out);
  return static_cast<uint32_t>(First64(out) >> (64 - kSummaryFineBits));
}

SummaryKey KeyOf(std::string_view device, uint32_t fine, uint64_t last,
                 const std::vector<std::string>& groups) {
  // Length-prefixed, so that no two different entries encode alike.
  journal::Sha256 sha;
  auto put = [&](std::string_view s) {
    const uint64_t n = s.size();
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<char>(n >> (8 * i));
    sha.Update(std::string_view(len, 8));
    sha.Update(s);
  };
  put(device);
  char seq[8];
  for (int i = 0; i < 8; ++i) seq[i] = static_cast<char>(last >> (8 * i));
  sha.Update(std::string_view(seq, 8));
  for (const auto& g : groups) put(g);
  char out[journal::kHashBytes];
  sha.Final(out);
  return {fine, First64(out)};
}

std::vector<uint64_t> BucketSums::Fold(int bits) const {
  std::vector<uint64_t> out(size_t{1} << bits, 0);
  for (uint32_t fine = 0; fine < sums_.size(); ++fine)
    out[Coarse(fine, bits)] += sums_[fine];
  return out;
}

int SummaryBits(size_t entries) {
  int bits = 0;
  while (bits < kSummaryFineBits && (entries >> (bits + 6)) > 0) ++bits;
  return bits;
}

uint64_t InterestDigest(const Interest& interest) {
  journal::Sha256 sha;
  for (const auto& p : interest.patterns()) {
    sha.Update(p);
    sha.Update(std::string_view("\n", 1));
  }
  char out[journal::kHashBytes];
  sha.Final(out);
  return First64(out);
}

}  // namespace cairn::sync
