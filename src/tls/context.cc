#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "tls/context_internal.h"

namespace cairn::tls {
namespace {

// Certificates and keys are small; anything bigger is not what we were given.
constexpr long kMaxPemFileBytes = 1 << 20;
constexpr int kMaxVerifyDepth = 4;

// One input: where it came from (a file name or a part name) and its PEM text.
struct Part {
  std::string label;
  std::string text;
};

struct Material {
  Part ca, cert, key;
};

struct FileClose {
  void operator()(FILE* f) const { fclose(f); }
};

Result<std::string> ReadSmallFile(const std::string& path) {
  std::unique_ptr<FILE, FileClose> f(fopen(path.c_str(), "rb"));
  if (!f) return Status::IOError("cannot read " + path + ": " + strerror(errno));
  std::string text(static_cast<size_t>(kMaxPemFileBytes) + 1, '\0');
  size_t n = fread(text.data(), 1, text.size(), f.get());
  if (ferror(f.get()))
    return Status::IOError("cannot read " + path + ": " + strerror(errno));
  if (n > static_cast<size_t>(kMaxPemFileBytes)) {
    return Status::InvalidArgument(path + ": larger than 1 MiB, not a PEM file");
  }
  text.resize(n);
  return text;
}

BioPtr MemBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

Result<std::vector<X509Ptr>> ParseCerts(const Part& part) {
  BioPtr bio = MemBio(part.text);
  std::vector<X509Ptr> certs;
  for (int i = 0; i < 16; ++i) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    certs.push_back(std::move(cert));
  }
  ERR_clear_error();  // the read that ends the loop always fails
  if (certs.empty()) {
    return Status::InvalidArgument(part.label + ": no PEM certificate found");
  }
  return certs;
}

Result<PkeyPtr> ParseKey(const Part& part) {
  BioPtr bio = MemBio(part.text);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return Status::InvalidArgument(part.label + ": no usable PEM private key (" +
                                   OpenSslErrors() + ")");
  }
  return key;
}

std::string TimeText(const ASN1_TIME* t) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(bio.get(), t);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

SslCtxPtr NewTls13Ctx() {
  SslCtxPtr ctx(SSL_CTX_new(TLS_method()));
  CHECK(ctx != nullptr) << OpenSslErrors();
  CHECK(SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) == 1);
  CHECK(SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) == 1);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     nullptr);
  SSL_CTX_set_verify_depth(ctx.get(), kMaxVerifyDepth);
  // Every connection verifies a certificate: no resumption, no tickets.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx.get(), 0);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

Status AddCas(SSL_CTX* ctx, const std::vector<X509Ptr>& cas, const std::string& label,
              bool require_ca) {
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (const X509Ptr& ca : cas) {
    if (require_ca && X509_check_ca(ca.get()) < 1) {
      return Status::InvalidArgument(label + ": holds a certificate that is not a CA");
    }
    if (X509_STORE_add_cert(store, ca.get()) != 1) {
      return Status::InvalidArgument(label + ": " + OpenSslErrors());
    }
  }
  return Status::Ok();
}

std::string VerifyFailure(X509_STORE_CTX* vctx, const Material& m) {
  int err = X509_STORE_CTX_get_error(vctx);
  int depth = X509_STORE_CTX_get_error_depth(vctx);
  X509* bad = X509_STORE_CTX_get_current_cert(vctx);
  std::string who = depth == 0 ? m.cert.label : "the CA in " + m.ca.label;
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return who + ": certificate expired on " + TimeText(X509_get0_notAfter(bad));
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return who + ": certificate not valid before " + TimeText(X509_get0_notBefore(bad));
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return m.cert.label + ": not issued by the CA in " + m.ca.label + " (" +
             X509_verify_cert_error_string(err) + ")";
    default:
      return m.cert.label + ": does not verify against the CA in " + m.ca.label + " (" +
             X509_verify_cert_error_string(err) + ")";
  }
}

// The checks a peer would otherwise make on every connection, made once at load.
Status CheckCertificate(SSL_CTX* ctx, X509* cert, const Material& m) {
  if (X509_check_purpose(cert, X509_PURPOSE_SSL_CLIENT, 0) != 1 ||
      X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0) != 1) {
    return Status::InvalidArgument(
        m.cert.label +
        ": certificate not usable for TLS client and server (a device-only "
        "certificate? make node certificates with certs/make-node.sh)");
  }
  X509StoreCtxPtr vctx(X509_STORE_CTX_new());
  CHECK(vctx != nullptr);
  CHECK(X509_STORE_CTX_init(vctx.get(), SSL_CTX_get_cert_store(ctx), cert, nullptr) == 1);
  if (X509_verify_cert(vctx.get()) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument(VerifyFailure(vctx.get(), m));
  }
  return Status::Ok();
}

Status UseKeyPair(SSL_CTX* ctx, X509* cert, EVP_PKEY* key, const Material& m) {
  if (X509_check_private_key(cert, key) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument(
        m.key.label + ": private key does not match the certificate in " + m.cert.label);
  }
  if (SSL_CTX_use_certificate(ctx, cert) != 1) {
    return Status::InvalidArgument(m.cert.label + ": " + OpenSslErrors());
  }
  if (SSL_CTX_use_PrivateKey(ctx, key) != 1) {
    return Status::InvalidArgument(m.key.label + ": " + OpenSslErrors());
  }
  return Status::Ok();
}

Result<std::shared_ptr<const Context>> Build(const Material& m) {
  SslCtxPtr ctx = NewTls13Ctx();
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> cas, ParseCerts(m.ca));
  CAIRN_RETURN_IF_ERROR(AddCas(ctx.get(), cas, m.ca.label, /*require_ca=*/true));
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, ParseCerts(m.cert));
  X509* cert = certs.front().get();
  CAIRN_ASSIGN_OR_RETURN(PkeyPtr key, ParseKey(m.key));
  CAIRN_RETURN_IF_ERROR(UseKeyPair(ctx.get(), cert, key.get(), m));
  CAIRN_RETURN_IF_ERROR(CheckCertificate(ctx.get(), cert, m));
  Result<std::string> id = CertificateId(cert);
  if (!id.ok()) return id.status().WithContext(m.cert.label);
  return std::make_shared<const Context>(std::move(ctx), std::move(id).value());
}

}  // namespace

bool IsValidNodeId(std::string_view id) {
  if (id.empty() || id.size() > 64 || id[0] == '.' || id[0] == '-') return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

Context::Context(SslCtxPtr ctx, std::string node_id)
    : ctx_(std::move(ctx)), node_id_(std::move(node_id)) {}

Context::~Context() = default;

Result<std::shared_ptr<const Context>> Context::FromFiles(const ContextFiles& files) {
  Material m;
  m.ca.label = files.ca_file;
  m.cert.label = files.cert_file;
  m.key.label = files.key_file;
  CAIRN_ASSIGN_OR_RETURN(m.ca.text, ReadSmallFile(files.ca_file));
  CAIRN_ASSIGN_OR_RETURN(m.cert.text, ReadSmallFile(files.cert_file));
  CAIRN_ASSIGN_OR_RETURN(m.key.text, ReadSmallFile(files.key_file));
  return Build(m);
}

Result<std::shared_ptr<const Context>> Context::FromPem(const ContextPem& pem) {
  return Build(
      Material{{"CA", pem.ca_pem}, {"certificate", pem.cert_pem}, {"key", pem.key_pem}});
}

namespace internal {

Result<std::shared_ptr<const Context>> UncheckedContext(const std::string& ca_pem,
                                                        const std::string& cert_pem,
                                                        const std::string& key_pem) {
  Material m{{"CA", ca_pem}, {"certificate", cert_pem}, {"key", key_pem}};
  SslCtxPtr ctx = NewTls13Ctx();
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> cas, ParseCerts(m.ca));
  CAIRN_RETURN_IF_ERROR(AddCas(ctx.get(), cas, m.ca.label, /*require_ca=*/false));
  if (cert_pem.empty()) return std::make_shared<const Context>(std::move(ctx), "");
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, ParseCerts(m.cert));
  CAIRN_ASSIGN_OR_RETURN(PkeyPtr key, ParseKey(m.key));
  CAIRN_RETURN_IF_ERROR(UseKeyPair(ctx.get(), certs.front().get(), key.get(), m));
  Result<std::string> id = CertificateId(certs.front().get());
  return std::make_shared<const Context>(std::move(ctx), id.ok() ? *id : "");
}

}  // namespace internal
}  // namespace cairn::tls
