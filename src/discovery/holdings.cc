#include "discovery/holdings.h"

#include <algorithm>
#include <cmath>

namespace cairn::discovery {
namespace {

uint64_t Fnv1a(std::string_view s, uint64_t basis) {
  uint64_t h = basis;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

template <typename F>
void ForEachBit(std::string_view device, uint64_t bits, uint32_t hashes, F f) {
  const uint64_t h1 = Fnv1a(device, 0xcbf29ce484222325ULL);
  const uint64_t h2 = Fnv1a(device, 0x84222325cbf29ce4ULL) | 1;
  for (uint32_t i = 0; i < hashes; ++i) f((h1 + i * h2) % bits);
}

}  // namespace

wire::Holdings MakeHoldings(const std::vector<std::string>& devices) {
  const double n = std::max<double>(1, static_cast<double>(devices.size()));
  // ~9.6 bits per device for 1 % false positives; at least 64 bytes.
  size_t bytes = static_cast<size_t>(std::ceil(n * 9.6 / 8));
  bytes = std::clamp<size_t>(bytes, 64, kMaxHoldingsBytes);
  const uint64_t bits = bytes * 8;
  const auto k = static_cast<uint32_t>(std::clamp<double>(
      std::round(static_cast<double>(bits) / n * std::log(2.0)), 1, kMaxHoldingsHashes));
  std::string bloom(bytes, '\0');
  for (const auto& d : devices) {
    ForEachBit(d, bits, k,
               [&](uint64_t b) { bloom[b / 8] |= static_cast<char>(1 << (b % 8)); });
  }
  wire::Holdings h;
  h.set_bloom(std::move(bloom));
  h.set_hashes(k);
  h.set_devices(static_cast<uint32_t>(devices.size()));
  return h;
}

bool MayHold(const wire::Holdings& h, std::string_view device) {
  if (h.bloom().empty() || h.hashes() == 0 || h.devices() == 0) return false;
  const uint64_t bits = h.bloom().size() * 8;
  bool all = true;
  ForEachBit(device, bits, std::min(h.hashes(), kMaxHoldingsHashes), [&](uint64_t b) {
    all = all && (static_cast<unsigned char>(h.bloom()[b / 8]) & (1u << (b % 8))) != 0;
  });
  return all;
}

Status CheckHoldings(const wire::Holdings& h) {
  if (h.bloom().size() > kMaxHoldingsBytes) {
    return Status::InvalidArgument("holdings of " + std::to_string(h.bloom().size()) +
                                   " bytes, over " + std::to_string(kMaxHoldingsBytes));
  }
  if (h.hashes() > kMaxHoldingsHashes) {
    return Status::InvalidArgument("holdings with " + std::to_string(h.hashes()) +
                                   " hashes, over " + std::to_string(kMaxHoldingsHashes));
  }
  // A filter with nearly every bit set says "maybe" to every device: it would
  // draw dials to its node for anything wanted. MakeHoldings sets about half.
  size_t set = 0;
  for (unsigned char c : h.bloom()) set += static_cast<size_t>(__builtin_popcount(c));
  if (!h.bloom().empty() && set * 10 > h.bloom().size() * 8 * 9) {
    return Status::InvalidArgument("holdings with over 90% of their bits set");
  }
  return Status::Ok();
}

}  // namespace cairn::discovery
