#include "tls/context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "base/x509_uris.h"
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

// A revocation list grows with what was revoked: about 40 bytes per certificate.
constexpr long kMaxCrlFileBytes = 16 << 20;
constexpr size_t kMaxCrls = 64;

Result<std::string> ReadSmallFile(const std::string& path,
                                  long limit = kMaxPemFileBytes) {
  std::unique_ptr<FILE, FileClose> f(fopen(path.c_str(), "rb"));
  if (!f) return Status::IOError("cannot read " + path + ": " + strerror(errno));
  std::string text(static_cast<size_t>(limit) + 1, '\0');
  size_t n = fread(text.data(), 1, text.size(), f.get());
  if (ferror(f.get()))
    return Status::IOError("cannot read " + path + ": " + strerror(errno));
  if (n > static_cast<size_t>(limit)) {
    return Status::InvalidArgument(path + ": larger than " + std::to_string(limit >> 20) +
                                   " MiB, not a PEM file");
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
Status CheckCertificate(SSL_CTX* ctx, X509* cert, const Material& m, bool client_only) {
  if (X509_check_purpose(cert, X509_PURPOSE_SSL_CLIENT, 0) != 1 ||
      (!client_only && X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0) != 1)) {
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

Result<std::shared_ptr<const Context>> Build(const Material& m,
                                             bool client_only = false) {
  SslCtxPtr ctx = NewTls13Ctx();
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> cas, ParseCerts(m.ca));
  CAIRN_RETURN_IF_ERROR(AddCas(ctx.get(), cas, m.ca.label, /*require_ca=*/true));
  CAIRN_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, ParseCerts(m.cert));
  X509* cert = certs.front().get();
  CAIRN_ASSIGN_OR_RETURN(PkeyPtr key, ParseKey(m.key));
  CAIRN_RETURN_IF_ERROR(UseKeyPair(ctx.get(), cert, key.get(), m));
  CAIRN_RETURN_IF_ERROR(CheckCertificate(ctx.get(), cert, m, client_only));
  Result<std::string> id = CertificateId(cert);
  if (!id.ok()) return id.status().WithContext(m.cert.label);
  return std::make_shared<const Context>(std::move(ctx), std::move(id).value());
}

std::string NameText(const X509_NAME* name) {
  char buf[256];
  X509_NAME_oneline(name, buf, sizeof(buf));
  return buf;
}

std::string SerialText(const ASN1_INTEGER* serial) {
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  if (bn == nullptr) return "?";
  char* hex = BN_bn2hex(bn);
  std::string out = hex != nullptr ? hex : "?";
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

// The CA of `store` that issued and signed `crl`, or nullptr.
X509* IssuerOf(X509_STORE* store, X509_CRL* crl) {
  STACK_OF(X509_OBJECT)* objects = X509_STORE_get0_objects(store);
  for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
    X509* ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i));
    if (ca == nullptr ||
        X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl)) != 0) {
      continue;
    }
    if (X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1) return ca;
  }
  ERR_clear_error();
  return nullptr;
}

}  // namespace

struct Context::CrlState {
  struct Set {
    std::string path;
    std::vector<X509CrlPtr> crls;
    size_t revoked = 0;
    std::string next_update;  // the earliest
  };
  std::mutex mu;
  std::shared_ptr<const Set> set;  // guarded by mu

  std::shared_ptr<const Set> Get() {
    std::lock_guard<std::mutex> l(mu);
    return set;
  }
  // The SSL_CTX ex_data slot that owns it.
  static int Index() {
    static const int index =
        SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr,
                                 [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
                                   delete static_cast<CrlState*>(ptr);
                                 });
    return index;
  }
};

PeerRole RoleOf(X509* cert) {
  PeerRole role;
  if (cert == nullptr || X509_check_purpose(cert, X509_PURPOSE_SSL_SERVER, 0) == 1) {
    ERR_clear_error();
    return role;  // a node
  }
  ERR_clear_error();
  role.reader = true;
  role.read_scope = SanUrisWithPrefix(cert, "cairn-read:");
  // A reader certificate that names only other URIs reads nothing, not everything.
  if (role.read_scope.empty() &&
      X509_get_ext_by_NID(cert, NID_subject_alt_name, -1) >= 0) {
    role.read_scope.push_back("");  // matches no device id (ids are never empty)
  }
  return role;
}

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
    : ctx_(std::move(ctx)), node_id_(std::move(node_id)), crl_(new CrlState) {
  // Each handshake asks the lists in force whether the peer's certificate is revoked.
  CHECK(SSL_CTX_set_ex_data(ctx_.get(), CrlState::Index(), crl_) == 1);
  SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     &Context::VerifyCallback);
}

int Context::VerifyCallback(int preverify_ok, X509_STORE_CTX* store_ctx) {
  if (preverify_ok != 1 || X509_STORE_CTX_get_error_depth(store_ctx) != 0) {
    return preverify_ok;
  }
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store_ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return preverify_ok;
  auto* state = static_cast<CrlState*>(
      SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), CrlState::Index()));
  if (state != nullptr &&
      !RevokedIn(*state, X509_STORE_CTX_get_current_cert(store_ctx)).empty()) {
    X509_STORE_CTX_set_error(store_ctx, X509_V_ERR_CERT_REVOKED);
    return 0;
  }
  return preverify_ok;
}

Result<std::string> Context::LoadCrl(const std::string& path) const {
  CAIRN_ASSIGN_OR_RETURN(std::string text, ReadSmallFile(path, kMaxCrlFileBytes));
  auto set = std::make_shared<CrlState::Set>();
  set->path = path;
  BioPtr bio = MemBio(text);
  // Every list in the file, or none: a damaged or cut copy must not load the
  // lists before the damage and drop the revocations after it.
  while (true) {
    ERR_clear_error();
    X509CrlPtr crl(PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr));
    if (!crl) {
      const unsigned long err = ERR_peek_last_error();
      const bool at_end =
          ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE;
      ERR_clear_error();
      if (at_end && !set->crls.empty()) break;
      if (set->crls.empty() && at_end) {
        return Status::InvalidArgument(path +
                                       ": no PEM revocation list (X509 CRL) found");
      }
      return Status::InvalidArgument(
          path + ": revocation list " + std::to_string(set->crls.size() + 1) +
          " of the file does not parse (damaged or cut short)");
    }
    if (set->crls.size() == kMaxCrls) {
      return Status::InvalidArgument(path + ": more than " + std::to_string(kMaxCrls) +
                                     " revocation lists");
    }
    set->crls.push_back(std::move(crl));
  }
  const ASN1_TIME* earliest = nullptr;
  for (const X509CrlPtr& crl : set->crls) {
    const std::string issuer = NameText(X509_CRL_get_issuer(crl.get()));
    if (IssuerOf(SSL_CTX_get_cert_store(ctx_.get()), crl.get()) == nullptr) {
      return Status::InvalidArgument(path + ": the revocation list of '" + issuer +
                                     "' is not signed by a CA of this network");
    }
    const ASN1_TIME* next = X509_CRL_get0_nextUpdate(crl.get());
    if (next != nullptr && X509_cmp_current_time(next) < 0) {
      return Status::InvalidArgument(
          path + ": the revocation list of '" + issuer + "' expired on " +
          TimeText(next) +
          " (its next update has passed); write a fresh one with certs/revoke.sh");
    }
    if (next != nullptr &&
        (earliest == nullptr || ASN1_TIME_compare(next, earliest) < 0)) {
      earliest = next;
    }
    const STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
    set->revoked +=
        revoked == nullptr ? 0 : static_cast<size_t>(sk_X509_REVOKED_num(revoked));
  }
  set->next_update = earliest == nullptr ? "none" : TimeText(earliest);
  {
    std::lock_guard<std::mutex> l(crl_->mu);
    crl_->set = set;
  }
  return std::to_string(set->revoked) + " revoked certificate" +
         (set->revoked == 1 ? "" : "s") + ", next update " + set->next_update;
}

std::string Context::Revoked(X509* cert) const { return RevokedIn(*crl_, cert); }

std::string Context::RevokedIn(CrlState& state, X509* cert) {
  std::shared_ptr<const CrlState::Set> set = state.Get();
  if (set == nullptr || cert == nullptr) return "";
  for (const X509CrlPtr& crl : set->crls) {
    if (X509_NAME_cmp(X509_CRL_get_issuer(crl.get()), X509_get_issuer_name(cert)) != 0) {
      continue;
    }
    X509_REVOKED* entry = nullptr;
    if (X509_CRL_get0_by_cert(crl.get(), &entry, cert) == 1 && entry != nullptr) {
      return "certificate serial " + SerialText(X509_get0_serialNumber(cert)) +
             " revoked on " + TimeText(X509_REVOKED_get0_revocationDate(entry));
    }
  }
  return "";
}

std::string Context::CrlSummary() const {
  std::shared_ptr<const CrlState::Set> set = crl_->Get();
  if (set == nullptr) return "";
  return set->path + ": " + std::to_string(set->revoked) + " revoked, next update " +
         set->next_update;
}

Context::~Context() = default;

Result<std::shared_ptr<const Context>> Context::FromFiles(const ContextFiles& files) {
  Material m;
  m.ca.label = files.ca_file;
  m.cert.label = files.cert_file;
  m.key.label = files.key_file;
  CAIRN_ASSIGN_OR_RETURN(m.ca.text, ReadSmallFile(files.ca_file));
  CAIRN_ASSIGN_OR_RETURN(m.cert.text, ReadSmallFile(files.cert_file));
  CAIRN_ASSIGN_OR_RETURN(m.key.text, ReadSmallFile(files.key_file));
  return Build(m, files.client_only);
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
