// Device identities: the network CA that vouches for device certificates, the
// public key of a verified device, and the signing key of a device this node is
// the source of. All signatures are Ed25519 through OpenSSL EVP.
//
// Thread-safety: CertAuthority and DevicePublicKey are immutable after creation
// and safe to share between threads. DeviceSigner::Sign may be called from one
// thread at a time.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/ossl_ptr.h"
#include "base/result.h"

namespace cairn::journal {

using cairn::PkeyPtr;
using cairn::X509StorePtr;

inline constexpr size_t kEd25519SigBytes = 64;
inline constexpr size_t kMaxDeviceIdBytes = 128;

// Device ids are CNs: 1..128 bytes of [A-Za-z0-9._:@-], so they are safe in keys,
// file names, logs and shells.
Status ValidateDeviceId(std::string_view device);

// The groups a device certificate (DER) names: its subjectAltName URIs
// "cairn-group:NAME" (certs/make-device.sh --group). None for a certificate that
// does not parse (it is checked elsewhere).
std::vector<std::string> DeviceGroups(std::string_view cert_der);

// The public half of a device whose certificate the CA vouched for, and when that
// certificate is valid. A record is accepted when its certificate was valid when
// it was signed: its signed time at most not_after (a certificate that expired
// since, or was renewed with the same key, keeps its history replicable); the
// signer refuses to sign outside the validity (DeviceSigner::UsableAt).
class DevicePublicKey {
 public:
  DevicePublicKey(std::string device, std::string cert_der, PkeyPtr key, std::string raw,
                  int64_t not_before_us = INT64_MIN, int64_t not_after_us = INT64_MAX,
                  std::vector<std::string> groups = {});
  const std::string& device() const { return device_; }
  const std::string& cert_der() const { return cert_der_; }
  // The 32 raw Ed25519 public key bytes (the chain's genesis depends on them).
  const std::string& raw() const { return raw_; }
  bool Verify(std::string_view message, std::string_view sig) const;
  int64_t not_before_us() const { return not_before_us_; }
  int64_t not_after_us() const { return not_after_us_; }
  // The groups the certificate names (DeviceGroups), read when it was verified.
  const std::vector<std::string>& groups() const { return groups_; }
  // Ok when the certificate had not expired at `time_us`; else why not. (Its
  // start is not enforced: see identity.cc.)
  Status ValidAt(int64_t time_us) const;

 private:
  std::string device_;
  std::string cert_der_;
  PkeyPtr key_;
  std::string raw_;
  int64_t not_before_us_;
  int64_t not_after_us_;
  std::vector<std::string> groups_;
};

// The network CA (one or more CA certificates: during a rollover, the old and the
// new). Every device certificate must be issued by one of them and carry CN =
// device id and an Ed25519 key; its validity is checked against the time records
// were signed (DevicePublicKey), not the time they are verified.
class CertAuthority {
 public:
  // `origin` names where the PEM came from, for error messages.
  static Result<std::shared_ptr<const CertAuthority>> FromPem(std::string_view pem,
                                                              std::string_view origin);
  static Result<std::shared_ptr<const CertAuthority>> FromFile(const std::string& path);

  Result<std::shared_ptr<const DevicePublicKey>> VerifyDevice(
      std::string_view cert_der, std::string_view device) const;

  explicit CertAuthority(X509StorePtr store);

 private:
  X509StorePtr store_;
};

// The signing key of a device whose source is this node.
class DeviceSigner {
 public:
  // Loads a PEM certificate and private key; checks the certificate against `ca`
  // and that the key matches it. `device` is the certificate's CN.
  static Result<std::shared_ptr<DeviceSigner>> FromPem(std::string_view cert_pem,
                                                       std::string_view key_pem,
                                                       const CertAuthority& ca);
  static Result<std::shared_ptr<DeviceSigner>> FromFiles(const std::string& cert_path,
                                                         const std::string& key_path,
                                                         const CertAuthority& ca);

  const std::string& device() const { return public_->device(); }
  const std::shared_ptr<const DevicePublicKey>& public_key() const { return public_; }
  // A 64-byte Ed25519 signature of `message`.
  std::string Sign(std::string_view message) const;

  DeviceSigner(std::shared_ptr<const DevicePublicKey> pub, PkeyPtr priv);

 private:
  std::shared_ptr<const DevicePublicKey> public_;
  PkeyPtr private_;
};

// Reads a whole file; the error names the path and the reason.
Result<std::string> ReadFileToString(const std::string& path);

}  // namespace cairn::journal
