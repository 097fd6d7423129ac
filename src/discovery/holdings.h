// Holdings: what devices a node stores, as a bloom filter over their ids
// (wire::Holdings). Each node sends its own to its peers, and peer exchange
// passes on those of a node's active peers, so a node that follows a device
// none of its peers hold can tell which node to dial for it (a node two hops
// away, or further as the mesh is explored through exchange). A filter answers
// "maybe" for about 1 % of the devices it does not hold up to ~50,000 devices,
// more beyond (it stops growing at kMaxHoldingsBytes): a wrong "maybe" costs one
// connection, which PeerManager bounds.
//
// The hashes are FNV-1a 64 of the id under two offset bases, combined as
// h1 + i*h2 (Kirsch–Mitzenmacher): the same on every node and platform.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "wire/schema.h"

namespace cairn::discovery {

inline constexpr size_t kMaxHoldingsBytes = 64u << 10;
inline constexpr uint32_t kMaxHoldingsHashes = 16;

wire::Holdings MakeHoldings(const std::vector<std::string>& devices);
bool MayHold(const wire::Holdings& holdings, std::string_view device);
// A filter from a peer: within the bounds, or why not.
Status CheckHoldings(const wire::Holdings& holdings);

}  // namespace cairn::discovery
