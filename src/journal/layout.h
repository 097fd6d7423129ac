// The journal's LevelDB key layout (one LevelDB per node). Integers are big-endian
// so byte order is numeric order; device ids, stores and keys are length-prefixed
// so one id is never a prefix of another. Values are cairn.proto messages.
//
//   'm' lp(device)                  -> StreamMeta
//   'e' lp(device) u64(seq)         -> Record
//   's' lp(device) u32(slot<<31)     -> SnapshotHeader of the snapshot in `slot`
//   's' lp(device) u32(slot<<31 | i) -> its SnapshotChunk i, i >= 1 (each <= 1 MiB)
//   'v' lp(device) lp(store) key    -> KvEntry (key raw: a store's keys sort as bytes)
//   'p' lp(node id)                 -> PeerRecord
//   'f' lp(device) u64(seq)         -> ForkProof
//   'a' lp(device) lp(node id)      -> u64: the last seq that follower reported holding
//
// A device has two snapshot slots, 0 and 1. StreamMeta.snapshot_slot names the
// current snapshot's; the next one is written into the other over as many
// batches as it takes (a snapshot may be far larger than memory), then made
// current by one meta write, so a reader never sees half of one. Snapshots
// stored before there were two slots are in slot 0, where they stay readable.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace cairn::journal::layout {

std::string MetaKey(std::string_view device);
inline constexpr std::string_view kMetaPrefix = "m";
std::string EventKey(std::string_view device, uint64_t seq);
std::string EventPrefix(std::string_view device);
std::string SnapshotKey(std::string_view device, uint32_t slot, uint32_t index);
std::string SnapshotPrefix(std::string_view device);  // both slots
std::string KvKey(std::string_view device, std::string_view store, std::string_view key);
std::string KvPrefix(std::string_view device);
std::string KvStorePrefix(std::string_view device, std::string_view store);
std::string PeerKey(std::string_view node_id);
inline constexpr std::string_view kPeerPrefix = "p";
std::string ForkKey(std::string_view device, uint64_t seq);
inline constexpr std::string_view kForkPrefix = "f";
std::string FollowerKey(std::string_view device, std::string_view node_id);
std::string FollowerPrefix(std::string_view device);
inline constexpr std::string_view kFollowerPrefix = "a";

// Parsers return false on a key of another shape.
bool ParseMetaKey(std::string_view key, std::string* device);
bool ParseEventKey(std::string_view key, std::string* device, uint64_t* seq);
bool ParseKvKey(std::string_view key, std::string* device, std::string* store,
                std::string* kv_key);
// A key under SnapshotPrefix(device): its slot and index.
bool ParseSnapshotKey(std::string_view key, std::string_view device, uint32_t* slot,
                      uint32_t* index);
bool ParseFollowerKey(std::string_view key, std::string* device, std::string* node_id);

}  // namespace cairn::journal::layout
