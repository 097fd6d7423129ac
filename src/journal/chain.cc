#include "journal/chain.h"

#include <cstring>

#include "base/bytes.h"
#include "base/check.h"

namespace cairn::journal {
namespace {

// Fetched once: an implicit fetch on every digest costs more than hashing a record.
const EVP_MD* Sha256Md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  CHECK(md != nullptr);
  return md;
}

}  // namespace

namespace {

// One digest context per thread, re-initialised per hash: allocating a context
// per record costs as much as hashing it.
struct ThreadCtx {
  ThreadCtx() : ctx(EVP_MD_CTX_new()) { CHECK(ctx != nullptr); }
  ~ThreadCtx() { EVP_MD_CTX_free(ctx); }
  EVP_MD_CTX* ctx;
  bool in_use = false;
};
thread_local ThreadCtx thread_ctx;

}  // namespace

Sha256::Sha256() {
  if (!thread_ctx.in_use) {
    thread_ctx.in_use = true;
    ctx_ = thread_ctx.ctx;
  } else {
    ctx_ = EVP_MD_CTX_new();  // nested use on one thread
    CHECK(ctx_ != nullptr);
  }
  CHECK(EVP_DigestInit_ex(ctx_, Sha256Md(), nullptr) == 1);
}

Sha256::~Sha256() {
  if (ctx_ == thread_ctx.ctx) {
    thread_ctx.in_use = false;
  } else {
    EVP_MD_CTX_free(ctx_);
  }
}

void Sha256::Update(std::string_view bytes) {
  CHECK(EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()) == 1);
}

std::string Sha256::Final() {
  std::string out(kHashBytes, '\0');
  unsigned int len = 0;
  CHECK(EVP_DigestFinal_ex(ctx_, reinterpret_cast<unsigned char*>(out.data()), &len) ==
        1);
  CHECK(len == kHashBytes);
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

std::string ContentDigest(std::string_view device, int64_t time_us, std::string_view type,
                          std::string_view payload) {
  // Everything but the payload goes through one small buffer; the payload is
  // hashed in place so a 1 MiB event is never copied for hashing.
  std::string head = "cairn.content.v1";
  head.reserve(head.size() + device.size() + type.size() + 24);
  PutLengthPrefixed(&head, device);
  PutU64BE(&head, static_cast<uint64_t>(time_us));
  PutLengthPrefixed(&head, type);
  PutU32BE(&head, static_cast<uint32_t>(payload.size()));
  Sha256 sha;
  sha.Update(head);
  sha.Update(payload);
  return sha.Final();
}

std::string LinkHash(std::string_view prev_hash, uint64_t seq, std::string_view content) {
  char buf[kHashBytes * 2 + 8];
  CHECK(prev_hash.size() == kHashBytes && content.size() == kHashBytes);
  std::memcpy(buf, prev_hash.data(), kHashBytes);
  for (int i = 0; i < 8; ++i)
    buf[kHashBytes + i] = static_cast<char>(seq >> (56 - 8 * i));
  std::memcpy(buf + kHashBytes + 8, content.data(), kHashBytes);
  Sha256 sha;
  sha.Update(std::string_view(buf, sizeof buf));
  return sha.Final();
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
