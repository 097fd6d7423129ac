#include "fuzz_fixture.h"

#include <leveldb/helpers/memenv.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "base/check.h"
#include "base/ossl_ptr.h"
#include "testutil/manual_clock.h"
#include "wire/frame.h"

namespace cairn::fuzz {
namespace {

using journal::PkeyPtr;
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// A fixed private key: byte i of the seed is i * `salt` (test material only).
PkeyPtr FixedKey(unsigned char salt) {
  unsigned char seed[32];
  for (int i = 0; i < 32; ++i) seed[i] = static_cast<unsigned char>(i * salt + 1);
  PkeyPtr key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed, 32));
  CHECK(key != nullptr);
  return key;
}

// A certificate for `cn` and `key`, signed by `issuer_key` (itself when null).
X509Ptr MakeCert(const std::string& cn, EVP_PKEY* key, X509* issuer,
                 EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), issuer ? 2 : 1);
  X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -3600, nullptr);
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), 3650, 0, nullptr);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  const auto* cn_bytes = reinterpret_cast<const unsigned char*>(cn.data());
  X509_NAME_add_entry_by_NID(subject, NID_commonName, MBSTRING_UTF8, cn_bytes,
                             static_cast<int>(cn.size()), -1, 0);
  X509* signer = issuer ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : subject);
  const std::pair<int, const char*> extensions[] = {
      {NID_basic_constraints, issuer ? "critical,CA:FALSE" : "critical,CA:TRUE"},
      {NID_key_usage,
       issuer ? "critical,digitalSignature" : "critical,keyCertSign,cRLSign"}};
  for (const auto& [nid, value] : extensions) {
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, signer, cert.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
    CHECK(ext != nullptr && X509_add_ext(cert.get(), ext, -1) == 1) << value;
    X509_EXTENSION_free(ext);
  }
  CHECK(X509_sign(cert.get(), issuer_key ? issuer_key : key, nullptr) > 0);
  return cert;
}

std::string Pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string Der(X509* cert) {
  unsigned char* out = nullptr;
  int n = i2d_X509(cert, &out);
  CHECK(n > 0);
  std::string der(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return der;
}

std::shared_ptr<journal::DeviceSigner> Signer(const std::string& cn, unsigned char salt,
                                              X509* ca, EVP_PKEY* ca_key,
                                              const journal::CertAuthority& authority) {
  PkeyPtr key = FixedKey(salt);
  X509Ptr cert = MakeCert(cn, key.get(), ca, ca_key);
  auto s = journal::DeviceSigner::FromPem(Pem(cert.get()), KeyPem(key.get()), authority);
  CHECK(s.ok()) << s.status().ToString();
  return *s;
}

std::string KvPut(int i) {
  return R"({"store":"s","key":"k)" + std::to_string(i % 4) + R"(","value":{"n":)" +
         std::to_string(i) + "}}";
}

std::vector<journal::NewEvent> Batch(int from, int n) {
  std::vector<journal::NewEvent> out;
  for (int i = from; i < from + n; ++i) {
    switch (i % 5) {
      case 0:
        out.push_back({"kv.put", KvPut(i)});
        break;
      case 1:
        out.push_back({"kv.patch", R"({"store":"s","key":"k1","value":{"p":)" +
                                       std::to_string(i) + "}}"});
        break;
      case 2:
        out.push_back({"kv.put", R"({"store":"t","key":"x","value":1,"ttl_ms":5})"});
        break;
      case 3:
        out.push_back({"kv.del", R"({"store":"s","key":"k2"})"});
        break;
      default:
        out.push_back({"note", "{\"i\":" + std::to_string(i) + "}"});
    }
  }
  return out;
}

Fixture Build() {
  Fixture f;
  PkeyPtr ca_key = FixedKey(3);
  X509Ptr ca = MakeCert("fuzz-ca", ca_key.get(), nullptr, nullptr);
  auto authority = journal::CertAuthority::FromPem(Pem(ca.get()), "fuzz CA");
  CHECK(authority.ok()) << authority.status().ToString();
  f.ca = *authority;
  auto signer = Signer(kFuzzDevice, 5, ca.get(), ca_key.get(), *f.ca);
  f.cert_der = signer->public_key()->cert_der();
  f.other_signer = Signer("fz-other", 7, ca.get(), ca_key.get(), *f.ca);
  f.other_cert_der = f.other_signer->public_key()->cert_der();
  PkeyPtr stranger_ca_key = FixedKey(11);
  X509Ptr stranger_ca = MakeCert("stranger-ca", stranger_ca_key.get(), nullptr, nullptr);
  PkeyPtr dev_key = FixedKey(5);
  f.stranger_cert_der =
      Der(MakeCert(kFuzzDevice, dev_key.get(), stranger_ca.get(), stranger_ca_key.get())
              .get());

  std::unique_ptr<leveldb::Env> env(leveldb::NewMemEnv(leveldb::Env::Default()));
  testutil::ManualClock clock;
  journal::JournalOptions o;
  o.store.path = "/fuzz-source";
  o.store.env = env.get();
  o.ca = f.ca;
  o.sources.push_back(signer);
  o.clock = &clock;
  o.sync_writes = false;
  auto j = journal::Journal::Open(std::move(o));
  CHECK(j.ok()) << j.status().ToString();
  journal::Journal& src = **j;
  for (auto [from, n] : {std::pair{1, 5}, {6, 10}, {16, 5}}) {
    CHECK(src.Append(kFuzzDevice, Batch(from, n)).ok());
  }
  f.records = *src.Read(kFuzzDevice, 1, 100);
  CHECK(src.Snapshot(kFuzzDevice).ok());
  f.snapshot_a = *src.ReadSnapshot(kFuzzDevice);
  f.view_a = *src.KeptView(kFuzzDevice);
  CHECK(src.Append(kFuzzDevice, Batch(21, 5)).ok());
  // Held in a named Result: a range-for over *temporary would dangle in C++20.
  auto more = src.Read(kFuzzDevice, 21, 100);
  CHECK(more.ok());
  for (auto& r : *more) f.records.push_back(std::move(r));
  CHECK(src.Snapshot(kFuzzDevice).ok());
  f.snapshot_b = *src.ReadSnapshot(kFuzzDevice);
  f.view_b = *src.KeptView(kFuzzDevice);
  CHECK(f.records.size() == 25 && f.snapshot_a.header.seq() == 20 &&
        f.snapshot_b.header.seq() == 25);
  j->reset();
  return f;
}

}  // namespace

const Fixture& Fixture::Get() {
  static const Fixture fixture = Build();
  return fixture;
}

Replica::Replica(bool source) : env_(leveldb::NewMemEnv(leveldb::Env::Default())) {
  journal::JournalOptions o;
  o.store.path = "/fuzz-replica";
  o.store.env = env_.get();
  o.store.write_buffer_bytes = 1u << 20;
  o.store.block_cache_bytes = 1u << 20;
  o.ca = Fixture::Get().ca;
  if (source) o.sources.push_back(Fixture::Get().other_signer);
  o.sync_writes = false;
  auto j = journal::Journal::Open(std::move(o));
  CHECK(j.ok()) << j.status().ToString();
  journal_ = std::move(*j);
}

Replica::~Replica() { journal_.reset(); }

std::vector<std::string_view> SplitFrames(std::string_view bytes, size_t max_frames) {
  std::vector<std::string_view> out;
  while (out.size() < max_frames) {
    wire::DecodeResult d = wire::DecodeFrame(bytes);
    if (d.state != wire::DecodeState::kComplete) break;
    out.push_back(d.payload);
    bytes.remove_prefix(d.consumed);
  }
  return out;
}

}  // namespace cairn::fuzz
