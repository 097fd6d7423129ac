// The low-level SHA-256 interface is deprecated in OpenSSL 3; see Sha256 below.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "journal/chain.h"

#include <openssl/sha.h>

#include <cstring>

#include "base/bytes.h"
#include "base/check.h"

namespace cairn::journal {

// SHA-256 through OpenSSL's low-level interface. OpenSSL 3 marks it deprecated
// in favour of EVP, but EVP allocates and frees a provider context for every
// digest: for the 72-byte link hash that costs more than the hashing itself. The
// low-level functions use the same assembly (SHA-NI where present).
static_assert(sizeof(SHA256_CTX) <= 128, "Sha256::state_ too small");

// Room for lp(device) ‖ u64 time ‖ lp(type) ‖ u32 payload length: ids are at most
// 128 bytes and types at most 64 (checked before hashing).
constexpr size_t kMaxHeadBytes = 256;

Sha256::Sha256() {
  static_assert(alignof(SHA256_CTX) <= 8);
  CHECK(SHA256_Init(reinterpret_cast<SHA256_CTX*>(state_)) == 1);
}

void Sha256::Update(std::string_view bytes) {
  CHECK(SHA256_Update(reinterpret_cast<SHA256_CTX*>(state_), bytes.data(),
                      bytes.size()) == 1);
}

void Sha256::Final(char out[kHashBytes]) {
  CHECK(SHA256_Final(reinterpret_cast<unsigned char*>(out),
                     reinterpret_cast<SHA256_CTX*>(state_)) == 1);
}

std::string Sha256::Final() {
  std::string out(kHashBytes, '\0');
  Final(out.data());
  return out;
}

std::string GenesisHash(std::string_view device, std::string_view public_key_raw) {
  std::string buf = "cairn.genesis.v1";
  PutLengthPrefixed(&buf, device);
  PutLengthPrefixed(&buf, public_key_raw);
  Sha256 sha;
  sha.Update(buf);
  return sha.Final();
}

void ContentDigest(std::string_view device, int64_t time_us, std::string_view type,
                   std::string_view payload, char out[kHashBytes]) {
  // Everything but the payload goes through one small buffer; the payload is
  // hashed in place so a 1 MiB event is never copied for hashing.
  char head[32 + kMaxHeadBytes];
  std::string_view tag = "cairn.content.v1";
  size_t n = 0;
  auto put = [&](std::string_view bytes) {
    std::memcpy(head + n, bytes.data(), bytes.size());
    n += bytes.size();
  };
  auto put_u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) head[n++] = static_cast<char>(v >> (24 - 8 * i));
  };
  CHECK(device.size() + type.size() <= kMaxHeadBytes - 20);
  put(tag);
  put_u32(static_cast<uint32_t>(device.size()));
  put(device);
  for (int i = 0; i < 8; ++i)
    head[n++] = static_cast<char>(static_cast<uint64_t>(time_us) >> (56 - 8 * i));
  put_u32(static_cast<uint32_t>(type.size()));
  put(type);
  put_u32(static_cast<uint32_t>(payload.size()));
  Sha256 sha;
  sha.Update(std::string_view(head, n));
  sha.Update(payload);
  sha.Final(out);
}

std::string ContentDigest(std::string_view device, int64_t time_us, std::string_view type,
                          std::string_view payload) {
  std::string out(kHashBytes, '\0');
  ContentDigest(device, time_us, type, payload, out.data());
  return out;
}

void LinkHash(std::string_view prev_hash, uint64_t seq, std::string_view content,
              char out[kHashBytes]) {
  char buf[kHashBytes * 2 + 8];
  CHECK(prev_hash.size() == kHashBytes && content.size() == kHashBytes);
  std::memcpy(buf, prev_hash.data(), kHashBytes);
  for (int i = 0; i < 8; ++i)
    buf[kHashBytes + i] = static_cast<char>(seq >> (56 - 8 * i));
  std::memcpy(buf + kHashBytes + 8, content.data(), kHashBytes);
  Sha256 sha;
  sha.Update(std::string_view(buf, sizeof buf));
  sha.Final(out);
}

std::string LinkHash(std::string_view prev_hash, uint64_t seq, std::string_view content) {
  std::string out(kHashBytes, '\0');
  LinkHash(prev_hash, seq, content, out.data());
  return out;
}

std::string ChainHash(std::string_view prev_hash, std::string_view device, uint64_t seq,
                      int64_t time_us, std::string_view type, std::string_view payload) {
  return LinkHash(prev_hash, seq, ContentDigest(device, time_us, type, payload));
}

std::string ChainHashOf(std::string_view prev_hash, std::string_view device,
                        const wire::Record& record) {
  return ChainHash(prev_hash, device, record.seq(), record.time_us(), record.type(),
                   record.payload());
}

std::string EventSigMessage(std::string_view device, uint64_t seq,
                            std::string_view hash) {
  std::string m = "cairn.event.v1";
  PutLengthPrefixed(&m, device);
  PutU64BE(&m, seq);
  m.append(hash);
  return m;
}

std::string SnapshotSigMessage(const wire::SnapshotHeader& h) {
  std::string m = "cairn.snapshot.v1";
  PutLengthPrefixed(&m, h.device());
  PutU64BE(&m, h.seq());
  m.append(h.hash());
  PutU64BE(&m, static_cast<uint64_t>(h.time_us()));
  PutU32BE(&m, h.chunks());
  m.append(h.digest());
  return m;
}

void SnapshotDigester::Add(const wire::SnapshotEntry& e) {
  scratch_.clear();
  PutLengthPrefixed(&scratch_, e.store());
  PutLengthPrefixed(&scratch_, e.key());
  PutLengthPrefixed(&scratch_, e.entry().value());
  PutU64BE(&scratch_, e.entry().rev());
  PutU64BE(&scratch_, static_cast<uint64_t>(e.entry().expiry_us()));
  sha_.Update(scratch_);
}

}  // namespace cairn::journal
