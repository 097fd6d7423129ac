// The hash chain and the signed messages of a device stream. These byte encodings
// are part of the protocol: every node must compute them identically, forever.
//
//   hash[0]    = SHA-256("cairn.genesis.v1" ‖ lp(device) ‖ lp(public key))
//   content[n] = SHA-256("cairn.content.v1" ‖ lp(device) ‖ u64(time_us) ‖ lp(type)
//                        ‖ lp(payload))
//   hash[n]    = SHA-256(hash[n-1] ‖ u64(seq) ‖ content[n])
//
// The chain binds exactly what SHA-256(hash[n-1] ‖ device ‖ seq ‖ time ‖ type ‖
// payload) would, but the expensive part (hashing the payload) does not depend
// on the chain, so an appending caller computes it on its own thread and the
// writer, which must extend the chain in order, only hashes 72 bytes per event.
//   event signature    = Ed25519("cairn.event.v1" ‖ lp(device) ‖ u64(seq) ‖ hash[seq])
//   snapshot signature = Ed25519("cairn.snapshot.v1" ‖ lp(device) ‖ u64(seq)
//                                ‖ hash[seq] ‖ u64(time_us) ‖ u32(chunks) ‖ digest)
//   snapshot digest    = SHA-256 over lp(store) ‖ lp(key) ‖ lp(value) ‖ u64(rev)
//                        ‖ u64(expiry_us) of every entry, in order
//
// lp(x) is a 32-bit big-endian length then the bytes; integers are big-endian.
//
// Thread-safety: free functions; Sha256 objects are not shared.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "wire/schema.h"

namespace cairn::journal {

inline constexpr size_t kHashBytes = 32;

// Incremental SHA-256. No allocation: it runs twice per event on the hot path.
class Sha256 {
 public:
  Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view bytes);
  // Writes the 32-byte digest; the object may not be updated afterwards.
  void Final(char out[kHashBytes]);
  std::string Final();

 private:
  alignas(8) unsigned char state_[128];  // OpenSSL's SHA256_CTX
};

std::string GenesisHash(std::string_view device, std::string_view public_key_raw);
std::string ContentDigest(std::string_view device, int64_t time_us, std::string_view type,
                          std::string_view payload);
void ContentDigest(std::string_view device, int64_t time_us, std::string_view type,
                   std::string_view payload, char out[kHashBytes]);
std::string LinkHash(std::string_view prev_hash, uint64_t seq, std::string_view content);
void LinkHash(std::string_view prev_hash, uint64_t seq, std::string_view content,
              char out[kHashBytes]);
// LinkHash(prev_hash, seq, ContentDigest(device, time_us, type, payload)).
std::string ChainHash(std::string_view prev_hash, std::string_view device, uint64_t seq,
                      int64_t time_us, std::string_view type, std::string_view payload);
// The hash `record` must carry if it follows `prev_hash`.
std::string ChainHashOf(std::string_view prev_hash, std::string_view device,
                        const wire::Record& record);
std::string EventSigMessage(std::string_view device, uint64_t seq, std::string_view hash);
std::string SnapshotSigMessage(const wire::SnapshotHeader& header);

// Accumulates the snapshot digest entry by entry.
class SnapshotDigester {
 public:
  void Add(const wire::SnapshotEntry& entry);
  std::string Final() { return sha_.Final(); }

 private:
  Sha256 sha_;
  std::string scratch_;
};

}  // namespace cairn::journal
