#include "testutil/pki.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>

#include "base/check.h"
#include "base/ossl_ptr.h"

namespace cairn::testutil {
namespace {

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

PkeyPtr ReadKey(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

X509Ptr ReadCert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

void AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  CHECK(ext != nullptr) << value;
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A deterministic PKI (TestPki(name, seed)): keys from SHA-256(seed, cn), the
// serial from the same digest, validity from kFixedEpoch.
constexpr time_t kFixedEpoch = 1'735'689'600;  // 2025-01-01T00:00:00Z

Issued Make(const std::string& cn, X509* issuer, EVP_PKEY* issuer_key, int valid_days,
            int not_before_days, bool is_ca, const uint64_t* seed) {
  static std::atomic<long> serial{1};
  PkeyPtr key;
  long serial_number = 0;
  if (seed != nullptr) {
    unsigned char digest[32];
    const std::string material = std::to_string(*seed) + "/" + cn;
    CHECK(EVP_Digest(material.data(), material.size(), digest, nullptr, EVP_sha256(),
                     nullptr) == 1);
    key.reset(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, digest, 32));
    serial_number = (static_cast<long>(digest[0]) << 16 | digest[1] << 8 | digest[2]) + 1;
  } else {
    key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    serial_number = serial++;
  }
  CHECK(key != nullptr);
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial_number);
  if (seed != nullptr) {
    X509_time_adj_ex(X509_getm_notBefore(cert.get()), not_before_days, 0,
                     const_cast<time_t*>(&kFixedEpoch));
    X509_time_adj_ex(X509_getm_notAfter(cert.get()), not_before_days + valid_days, 0,
                     const_cast<time_t*>(&kFixedEpoch));
  } else {
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), 86400L * not_before_days - 60);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()),
                    86400L * (not_before_days + valid_days));
  }
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                             0);
  X509* signer = issuer ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  if (is_ca) {
    AddExt(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExt(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExt(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    AddExt(cert.get(), signer, NID_key_usage, "critical,digitalSignature");
    AddExt(cert.get(), signer, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  CHECK(X509_sign(cert.get(), issuer_key ? issuer_key : key.get(), nullptr) > 0);

  Issued out;
  BioPtr cb(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(cb.get(), cert.get());
  out.cert_pem = BioText(cb.get());
  BioPtr kb(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = BioText(kb.get());
  return out;
}

}  // namespace

TestPki::TestPki(const std::string& ca_name) {
  ca_ = Make(ca_name, nullptr, nullptr, 3650, 0, true, nullptr);
}

TestPki::TestPki(const std::string& ca_name, uint64_t seed) : seed_(seed) {
  ca_ = Make(ca_name, nullptr, nullptr, 3650, 0, true, &*seed_);
}

TestPki::~TestPki() = default;

Issued TestPki::Issue(const std::string& cn, int valid_days, int not_before_days) const {
  PkeyPtr ca_key = ReadKey(ca_.key_pem);
  X509Ptr ca_cert = ReadCert(ca_.cert_pem);
  return Make(cn, ca_cert.get(), ca_key.get(), valid_days, not_before_days, false,
              seed_ ? &*seed_ : nullptr);
}

void TestPki::WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  ASSERT_TRUE(f.good()) << path;
  f << text;
  f.close();
  ::chmod(path.c_str(), 0600);
}

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/cairn-test-XXXXXX";
  CHECK(mkdtemp(tmpl.data()) != nullptr) << tmpl;
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace cairn::testutil
