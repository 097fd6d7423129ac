// The vocabulary of the journal tests: a network CA, devices with keys, and
// journals opened on temporary directories with a manual clock.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "journal/journal.h"
#include "testutil/manual_clock.h"
#include "testutil/pki.h"
#include "testutil/status_matchers.h"

namespace cairn::journal {

class JournalTest : public ::testing::Test {
 protected:
  JournalTest() {
    auto ca = CertAuthority::FromPem(pki_.ca_cert_pem(), "test CA");
    CHECK(ca.ok()) << ca.status().ToString();
    ca_ = *ca;
  }

  // The signer of `device`, made once per test.
  std::shared_ptr<DeviceSigner> Signer(const std::string& device) {
    auto& s = signers_[device];
    if (!s) {
      testutil::Issued issued = pki_.Issue(device);
      auto r = DeviceSigner::FromPem(issued.cert_pem, issued.key_pem, *ca_);
      CHECK(r.ok()) << r.status().ToString();
      s = *r;
    }
    return s;
  }

  std::string CertOf(const std::string& device) {
    return Signer(device)->public_key()->cert_der();
  }

  JournalOptions Options(const std::string& name, std::vector<std::string> sources) {
    JournalOptions o;
    o.store.path = dir_.File(name);
    o.ca = ca_;
    o.clock = &clock_;
    for (const auto& d : sources) o.sources.push_back(Signer(d));
    return o;
  }

  std::unique_ptr<Journal> Open(const std::string& name,
                                std::vector<std::string> sources) {
    return OpenWith(Options(name, std::move(sources)));
  }

  std::unique_ptr<Journal> OpenWith(JournalOptions o) {
    auto j = Journal::Open(std::move(o));
    CHECK(j.ok()) << j.status().ToString();
    return std::move(*j);
  }

  static std::vector<NewEvent> Events(int n, const std::string& type = "note",
                                      const std::string& prefix = "e") {
    std::vector<NewEvent> out;
    for (int i = 0; i < n; ++i) out.push_back({type, prefix + std::to_string(i)});
    return out;
  }

  static NewEvent Put(const std::string& store, const std::string& key,
                      const std::string& value_json, int64_t ttl_ms = -1) {
    std::string p =
        R"({"store":")" + store + R"(","key":")" + key + R"(","value":)" + value_json;
    if (ttl_ms >= 0) p += R"(,"ttl_ms":)" + std::to_string(ttl_ms);
    return {"kv.put", p + "}"};
  }

  // Every stored record of `device` from `from`.
  static std::vector<wire::Record> All(const Journal& j, const std::string& device,
                                       uint64_t from = 1) {
    auto r = j.Read(device, from, 1u << 30, 1u << 30);
    CHECK(r.ok()) << r.status().ToString();
    return *r;
  }

  testutil::TestPki pki_;
  testutil::TempDir dir_;
  testutil::ManualClock clock_;
  std::shared_ptr<const CertAuthority> ca_;
  std::map<std::string, std::shared_ptr<DeviceSigner>> signers_;
};

}  // namespace cairn::journal
