// The peer protocol's version, which both ends of a connection check in the
// Hello: discovery for nodes, the Subscriber for `cairn tail --peer`.
#pragma once

#include <cstdint>

namespace cairn::wire {

// The version this build speaks, and the oldest it still accepts. A hello outside
// [kMinProtocolVersion, kProtocolVersion] is refused with a reason.
// 2: catalogue summaries (sync/summary.h), which a node of version 1 would take
// for an empty catalogue.
inline constexpr uint32_t kProtocolVersion = 2;
inline constexpr uint32_t kMinProtocolVersion = 2;

}  // namespace cairn::wire
