// TestPki: an in-memory network CA that issues Ed25519 certificates for tests, the
// same shape as certs/*.sh makes (CN = node or device id, client and server use).
//
// Thread-safety: none; one TestPki per test.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace cairn::testutil {

struct Issued {
  std::string cert_pem;
  std::string key_pem;
};

class TestPki {
 public:
  explicit TestPki(const std::string& ca_name = "cairn-test-ca");
  // The same certificates and keys for the same seed every time (the
  // simulator's runs replay): keys derived from the seed and the CN, validity
  // counted from 2025-01-01 rather than now.
  TestPki(const std::string& ca_name, uint64_t seed);
  ~TestPki();
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  const std::string& ca_cert_pem() const { return ca_.cert_pem; }
  const std::string& ca_key_pem() const { return ca_.key_pem; }

  // A certificate for `cn` valid from now + not_before_days for valid_days days.
  // Negative not_before_days with a short validity makes an expired certificate.
  Issued Issue(const std::string& cn, int valid_days = 30, int not_before_days = 0) const;

  // Writes PEM text to `path` (mode 0600). Aborts the test on failure.
  static void WriteFile(const std::string& path, const std::string& text);

 private:
  std::optional<uint64_t> seed_;
  Issued ca_;
};

// A fresh directory under $TMPDIR, removed with its contents by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace cairn::testutil
