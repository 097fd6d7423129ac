#include "journal/identity.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "base/check.h"
#include "base/x509_uris.h"

namespace cairn::journal {
namespace {

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

BioPtr MemBio(std::string_view bytes) {
  return BioPtr(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
}

std::string CommonName(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return {};
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
}

Result<std::string> RawPublicKey(EVP_PKEY* key) {
  if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    return Status::InvalidArgument("key is not Ed25519");
  }
  std::string raw(32, '\0');
  size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()),
                                  &len) != 1 ||
      len != 32) {
    return Status::InvalidArgument("cannot read the Ed25519 public key");
  }
  return raw;
}

std::string ToDer(X509* cert) {
  int n = i2d_X509(cert, nullptr);
  CHECK(n > 0);
  std::string der(static_cast<size_t>(n), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509(cert, &p);
  return der;
}

constexpr int kMaxCas = 16;  // as src/tls/context.cc

// Microseconds since the epoch of a certificate time; `missing` when it has none.
int64_t AsnTimeMicros(const ASN1_TIME* t, int64_t missing) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return missing;
  return static_cast<int64_t>(timegm(&tm)) * 1'000'000;
}

int64_t NowMicros() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000 + ts.tv_nsec / 1000;
}

std::string UtcText(int64_t us) {
  const time_t secs = static_cast<time_t>(us / 1'000'000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The chain only: the validity period is checked against the time of signing.
Status CheckAgainstStore(X509_STORE* store, X509* cert) {
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  CHECK(ctx != nullptr);
  if (X509_STORE_CTX_init(ctx.get(), store, cert, nullptr) != 1) {
    return Status::Corruption("cannot verify certificate: " + OpenSslError());
  }
  X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_NO_CHECK_TIME);
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    return Status::PermissionDenied(
        std::string("certificate not accepted by the network CA: ") +
        X509_verify_cert_error_string(err));
  }
  return Status::Ok();
}

}  // namespace

Status ValidateDeviceId(std::string_view device) {
  if (device.empty() || device.size() > kMaxDeviceIdBytes) {
    return Status::InvalidArgument("device id must be 1 to 128 bytes, got " +
                                   std::to_string(device.size()));
  }
  for (char c : device) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == ':' ||
              c == '@';
    if (!ok) {
      return Status::InvalidArgument("device id '" + std::string(device) +
                                     "' has a character outside [A-Za-z0-9._:@-]");
    }
  }
  return Status::Ok();
}

Result<std::string> ReadFileToString(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::IOError(path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::IOError(path + ": read failed");
  return ss.str();
}

DevicePublicKey::DevicePublicKey(std::string device, std::string cert_der, PkeyPtr key,
                                 std::string raw, int64_t not_before_us,
                                 int64_t not_after_us, std::vector<std::string> groups)
    : device_(std::move(device)),
      cert_der_(std::move(cert_der)),
      key_(std::move(key)),
      raw_(std::move(raw)),
      not_before_us_(not_before_us),
      not_after_us_(not_after_us),
      groups_(std::move(groups)) {}

Status DevicePublicKey::ValidAt(int64_t time_us) const {
  // Only the end: a renewal's start postdates what the key signed before it, and a
  // source whose clock is a little behind its new certificate must still append.
  if (time_us > not_after_us_) {
    return Status::PermissionDenied("the certificate of device '" + device_ +
                                    "' expired at " + UtcText(not_after_us_));
  }
  return Status::Ok();
}

bool DevicePublicKey::Verify(std::string_view message, std::string_view sig) const {
  if (sig.size() != kEd25519SigBytes) return false;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1) {
    ERR_clear_error();
    return false;
  }
  int rc = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
      reinterpret_cast<const unsigned char*>(message.data()), message.size());
  ERR_clear_error();
  return rc == 1;
}

CertAuthority::CertAuthority(X509StorePtr store) : store_(std::move(store)) {}

Result<std::shared_ptr<const CertAuthority>> CertAuthority::FromPem(
    std::string_view pem, std::string_view origin) {
  // Every CA in the file is trusted: during a rollover it holds the old and the new.
  BioPtr bio = MemBio(pem);
  X509StorePtr store(X509_STORE_new());
  int added = 0;
  for (; added < kMaxCas; ++added) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    if (X509_STORE_add_cert(store.get(), cert.get()) != 1) {
      return Status::InvalidArgument(std::string(origin) + ": " + OpenSslError());
    }
  }
  if (added == 0) {
    return Status::InvalidArgument(std::string(origin) +
                                   ": not a PEM certificate: " + OpenSslError());
  }
  ERR_clear_error();  // the read that ends the loop fails
  return std::make_shared<const CertAuthority>(std::move(store));
}

Result<std::shared_ptr<const CertAuthority>> CertAuthority::FromFile(
    const std::string& path) {
  CAIRN_ASSIGN_OR_RETURN(std::string pem, ReadFileToString(path));
  return FromPem(pem, path);
}

std::vector<std::string> DeviceGroups(std::string_view cert_der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(cert_der.data());
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(cert_der.size())));
  if (!cert) {
    ERR_clear_error();
    return {};
  }
  return SanUrisWithPrefix(cert.get(), "cairn-group:", 32);
}

Result<std::shared_ptr<const DevicePublicKey>> CertAuthority::VerifyDevice(
    std::string_view cert_der, std::string_view device) const {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(cert_der.data());
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(cert_der.size())));
  if (!cert) {
    ERR_clear_error();
    return Status::InvalidArgument("device certificate of '" + std::string(device) +
                                   "' is not valid DER");
  }
  Status s = CheckAgainstStore(store_.get(), cert.get());
  if (!s.ok()) return s.WithContext("device " + std::string(device));
  std::string cn = CommonName(cert.get());
  if (cn != device) {
    return Status::PermissionDenied("device certificate has CN '" + cn + "', expected '" +
                                    std::string(device) + "'");
  }
  PkeyPtr key(X509_get_pubkey(cert.get()));
  if (!key) return Status::InvalidArgument("device certificate has no public key");
  CAIRN_ASSIGN_OR_RETURN(std::string raw, RawPublicKey(key.get()));
  return std::make_shared<const DevicePublicKey>(
      cn, ToDer(cert.get()), std::move(key), std::move(raw),
      AsnTimeMicros(X509_get0_notBefore(cert.get()), INT64_MIN),
      AsnTimeMicros(X509_get0_notAfter(cert.get()), INT64_MAX),
      SanUrisWithPrefix(cert.get(), "cairn-group:", 32));
}

DeviceSigner::DeviceSigner(std::shared_ptr<const DevicePublicKey> pub, PkeyPtr priv)
    : public_(std::move(pub)), private_(std::move(priv)) {}

Result<std::shared_ptr<DeviceSigner>> DeviceSigner::FromPem(std::string_view cert_pem,
                                                            std::string_view key_pem,
                                                            const CertAuthority& ca) {
  BioPtr cb = MemBio(cert_pem);
  X509Ptr cert(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  if (!cert) return Status::InvalidArgument("not a PEM certificate: " + OpenSslError());
  BioPtr kb = MemBio(key_pem);
  PkeyPtr priv(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!priv) return Status::InvalidArgument("not a PEM private key: " + OpenSslError());
  std::string cn = CommonName(cert.get());
  CAIRN_ASSIGN_OR_RETURN(auto pub, ca.VerifyDevice(ToDer(cert.get()), cn));
  CAIRN_ASSIGN_OR_RETURN(std::string priv_pub, RawPublicKey(priv.get()));
  if (priv_pub != pub->raw()) {
    return Status::InvalidArgument("private key does not match the certificate of '" +
                                   cn + "'");
  }
  // A source signs only while its certificate is valid (replicas then accept what
  // it signed for good, see DevicePublicKey).
  if (Status valid = pub->ValidAt(NowMicros()); !valid.ok()) {
    return Status::FailedPrecondition(valid.message() +
                                      ": renew it with certs/renew.sh (the key stays)");
  }
  return std::make_shared<DeviceSigner>(std::move(pub), std::move(priv));
}

Result<std::shared_ptr<DeviceSigner>> DeviceSigner::FromFiles(
    const std::string& cert_path, const std::string& key_path, const CertAuthority& ca) {
  CAIRN_ASSIGN_OR_RETURN(std::string cert, ReadFileToString(cert_path));
  CAIRN_ASSIGN_OR_RETURN(std::string key, ReadFileToString(key_path));
  Result<std::shared_ptr<DeviceSigner>> r = FromPem(cert, key, ca);
  if (!r.ok()) return r.status().WithContext(cert_path + " / " + key_path);
  return r;
}

std::string DeviceSigner::Sign(std::string_view message) const {
  MdCtxPtr ctx(EVP_MD_CTX_new());
  CHECK(EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, private_.get()) == 1);
  std::string sig(kEd25519SigBytes, '\0');
  size_t len = sig.size();
  CHECK(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                       reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) == 1);
  CHECK(len == kEd25519SigBytes);
  return sig;
}

}  // namespace cairn::journal
