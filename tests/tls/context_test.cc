// Loading a Context from files: what works, and that every failure names the file
// and the reason.
#include "tls/context.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "testutil/pki.h"

namespace cairn::tls {
namespace {

using ::testing::HasSubstr;
using testutil::Issued;
using testutil::TestPki;

class ContextTest : public ::testing::Test {
 protected:
  // Writes the CA, `id`'s certificate and key as files; returns their names.
  ContextFiles Write(const Issued& id, const std::string& ca_pem = "") {
    ContextFiles f{dir_.File("ca.crt"), dir_.File("node.crt"), dir_.File("node.key")};
    TestPki::WriteFile(f.ca_file, ca_pem.empty() ? pki_.ca_cert_pem() : ca_pem);
    TestPki::WriteFile(f.cert_file, id.cert_pem);
    TestPki::WriteFile(f.key_file, id.key_pem);
    return f;
  }

  // Loads `files`, expects a failure, returns its message.
  std::string Failure(const ContextFiles& files) {
    Result<std::shared_ptr<const Context>> ctx = Context::FromFiles(files);
    EXPECT_FALSE(ctx.ok());
    return ctx.ok() ? "" : ctx.status().message();
  }

  TestPki pki_;
  testutil::TempDir dir_;
};

TEST_F(ContextTest, LoadsANodeCertificateAndKnowsItsId) {
  Result<std::shared_ptr<const Context>> ctx =
      Context::FromFiles(Write(pki_.Issue("n1")));
  ASSERT_TRUE(ctx.ok()) << ctx.status().ToString();
  EXPECT_EQ((*ctx)->node_id(), "n1");
  EXPECT_NE((*ctx)->native(), nullptr);
}

TEST_F(ContextTest, MissingFileIsNamed) {
  ContextFiles f = Write(pki_.Issue("n1"));
  f.key_file = dir_.File("absent.key");
  std::string m = Failure(f);
  EXPECT_THAT(m, HasSubstr(f.key_file));
  EXPECT_THAT(m, HasSubstr("No such file"));
}

TEST_F(ContextTest, KeyThatDoesNotMatchTheCertificateIsRefused) {
  ContextFiles f = Write(pki_.Issue("n1"));
  TestPki::WriteFile(f.key_file, pki_.Issue("n2").key_pem);
  std::string m = Failure(f);
  EXPECT_THAT(m,
              HasSubstr(f.key_file + ": private key does not match the certificate in " +
                        f.cert_file));
}

TEST_F(ContextTest, CertificateFromAnotherCaIsRefused) {
  TestPki other("other-ca");
  ContextFiles f = Write(other.Issue("n1"));
  EXPECT_THAT(Failure(f),
              HasSubstr(f.cert_file + ": not issued by the CA in " + f.ca_file));
}

TEST_F(ContextTest, ExpiredCertificateIsRefused) {
  ContextFiles f = Write(pki_.Issue("n1", /*valid_days=*/1, /*not_before_days=*/-10));
  EXPECT_THAT(Failure(f), HasSubstr(f.cert_file + ": certificate expired on "));
}

TEST_F(ContextTest, NotYetValidCertificateIsRefused) {
  ContextFiles f = Write(pki_.Issue("n1", 30, /*not_before_days=*/5));
  EXPECT_THAT(Failure(f), HasSubstr(f.cert_file + ": certificate not valid before "));
}

TEST_F(ContextTest, CaFileHoldingANodeCertificateIsRefused) {
  Issued n1 = pki_.Issue("n1");
  ContextFiles f = Write(n1, /*ca_pem=*/n1.cert_pem);
  EXPECT_THAT(Failure(f),
              HasSubstr(f.ca_file + ": holds a certificate that is not a CA"));
}

TEST_F(ContextTest, FileWithoutPemIsRefused) {
  ContextFiles f = Write(pki_.Issue("n1"));
  TestPki::WriteFile(f.cert_file, "hello\n");
  EXPECT_THAT(Failure(f), HasSubstr(f.cert_file + ": no PEM certificate found"));
  TestPki::WriteFile(f.cert_file, pki_.Issue("n1").cert_pem);
  TestPki::WriteFile(f.key_file, "not a key\n");
  EXPECT_THAT(Failure(f), HasSubstr(f.key_file + ": no usable PEM private key"));
}

TEST_F(ContextTest, CommonNameMustBeAValidNodeId) {
  ContextFiles f = Write(pki_.Issue("has space"));
  EXPECT_THAT(Failure(f),
              HasSubstr(f.cert_file + ": certificate CN 'has space' is not a valid"));
}

TEST_F(ContextTest, PemErrorsNameTheParts) {
  Issued n1 = pki_.Issue("n1");
  Result<std::shared_ptr<const Context>> ctx =
      Context::FromPem({pki_.ca_cert_pem(), n1.cert_pem, pki_.Issue("n2").key_pem});
  ASSERT_FALSE(ctx.ok());
  EXPECT_THAT(ctx.status().message(), HasSubstr("key: private key does not match"));
}

TEST(NodeIdTest, AcceptsTheScriptAlphabetOnly) {
  EXPECT_TRUE(IsValidNodeId("node-1.example_2"));
  EXPECT_TRUE(IsValidNodeId(std::string(64, 'a')));
  EXPECT_FALSE(IsValidNodeId(""));
  EXPECT_FALSE(IsValidNodeId(std::string(65, 'a')));
  EXPECT_FALSE(IsValidNodeId("-x"));
  EXPECT_FALSE(IsValidNodeId(".x"));
  EXPECT_FALSE(IsValidNodeId("a/b"));
  EXPECT_FALSE(IsValidNodeId(std::string("a\0b", 3)));
}

}  // namespace
}  // namespace cairn::tls
