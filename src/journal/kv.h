// The KV view's event semantics, pure: parsing a KV event's payload and applying
// it to the current entry. The journal calls these on append (to refuse malformed
// payloads before they reach the log), on apply and on rebuild, so the three can
// never disagree.
//
// Payload: {"store": S, "key": K, "value": V, "ttl_ms": T}
//   kv.put    replaces the value (value required)
//   kv.patch  RFC 7386 JSON merge patch onto the value (value required; null
//             members remove fields); an absent or expired entry patches {}
//   kv.del    removes the key (no value)
// ttl_ms (optional, integer >= 0, 0 = none) makes the entry expire at event time
// + ttl_ms; a patch without ttl_ms keeps the entry's expiry. An entry that has
// expired by an event's time is absent for that event.
//
// Limits, the same at the source and on every replica (both call ParseKvOp on the
// same signed bytes): a payload nesting deeper than kMaxJsonDepth is refused at
// append and, if a device signed one anyway, is an opaque (non-KV) event
// everywhere. A patch whose result would exceed kMaxKvValueBytes leaves the entry
// unchanged everywhere.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "wire/schema.h"

namespace cairn::journal {

inline constexpr size_t kMaxKvStoreBytes = 128;
inline constexpr size_t kMaxKvKeyBytes = 1024;
// A value after a merge patch; a put's value is bounded by the payload limit.
inline constexpr size_t kMaxKvValueBytes = 1u << 20;

enum class KvKind { kPut, kPatch, kDel };

struct KvOp {
  KvKind kind;
  std::string store;
  std::string key;
  std::string value_json;  // put/patch: the value or patch, as compact JSON
  int64_t ttl_ms = 0;
  bool has_ttl = false;
};

bool IsKvType(std::string_view type);

// Parses and validates the payload of a kv.* event. REQUIRES: IsKvType(type).
Result<KvOp> ParseKvOp(std::string_view type, std::string_view payload);

// The entry after `op` at (`seq`, `time_us`), or nullopt when it removes the key.
std::optional<wire::KvEntry> ApplyKvOp(const KvOp& op,
                                       const std::optional<wire::KvEntry>& current,
                                       uint64_t seq, int64_t time_us);

// True when `entry` has expired at `now_us`.
inline bool KvExpired(const wire::KvEntry& entry, int64_t now_us) {
  return entry.expiry_us() != 0 && entry.expiry_us() <= now_us;
}

}  // namespace cairn::journal
