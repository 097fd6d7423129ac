// Context: the TLS configuration of one node, built once from the network CA, the
// node's certificate and its private key, and shared by every connection it makes or
// accepts.
//
// What a Context enforces on every connection, both directions: TLS 1.3 only; the peer
// must present a certificate (client and server alike); the peer's chain must verify
// against the CA given here and be meant for TLS (extended key usage serverAuth /
// clientAuth, so a device-only certificate cannot act as a node); no session
// resumption, so every connection verifies a certificate.
//
// Loading checks what would otherwise fail later on some connection, and names the
// file and the reason: a missing or unreadable file, no PEM data, a CA file holding a
// certificate that is not a CA, a key that does not match the certificate, a
// certificate not issued by the CA, one that is expired or not yet valid, one not
// usable for TLS, a CN that is not a valid node id (see IsValidNodeId).
//
// Revocation: LoadCrl takes a revocation list (certs/revoke.sh); from then on every
// handshake refuses a peer whose certificate is on it (alert "certificate
// revoked"), and Revoked() tells the layer above which open connections to drop.
// A list is checked when loaded: issued by one of our CAs, signature valid, next
// update not passed; a list that fails leaves the one before in force. A CA with no
// list has nothing revoked.
//
// Thread-safety: Load functions may run on any thread; a built Context may be shared
// by connections on any thread. LoadCrl may be called at any time (a mutex guards
// the list; handshakes see the old list or the new one).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "tls/ossl.h"

namespace cairn::tls {

// Node and device ids: 1 to 64 characters of A-Z a-z 0-9 . _ -, not starting with
// '.' or '-' (the same rule as certs/*.sh).
bool IsValidNodeId(std::string_view id);

struct ContextFiles {
  std::string ca_file;    // PEM, one or more CA certificates (the network CA)
  std::string cert_file;  // PEM, this node's certificate
  std::string key_file;   // PEM, this node's private key
  // Only ever a client (`cairn tail --peer`): a reader certificate will do
  // (certs/make-reader.sh: TLS client only).
  bool client_only = false;
};

// What a peer's certificate lets it do. A node certificate (TLS client and server)
// may do everything a node does; a reader certificate (TLS client only,
// certs/make-reader.sh) may only subscribe, and only to the devices its
// subjectAltName URIs "cairn-read:GLOB" match (none: every device).
struct PeerRole {
  bool reader = false;
  std::vector<std::string> read_scope;  // globs (fnmatch); empty: all
};
// (The sync engine enforces the scope: sync::Engine::OnSubscriberActive.)
PeerRole RoleOf(X509* cert);

// The same material as PEM text (the daemon's --dev mode, tests). Error messages name
// the parts "CA", "certificate" and "key".
struct ContextPem {
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
};

class Context {
 public:
  static Result<std::shared_ptr<const Context>> FromFiles(const ContextFiles& files);
  static Result<std::shared_ptr<const Context>> FromPem(const ContextPem& pem);

  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // The CN of this node's own certificate: the id peers will see for us.
  const std::string& node_id() const { return node_id_; }

  // The OpenSSL context, for src/tls internals (Channel). Owned by this Context.
  SSL_CTX* native() const { return ctx_.get(); }

  // Loads the revocation lists (PEM, one per CA) in `path`, replacing those in
  // force. Returns what was loaded, for the log: "3 revoked certificates, next
  // update 2027-01-06T10:24:27Z".
  Result<std::string> LoadCrl(const std::string& path) const;
  // Why `cert` is revoked ("serial … revoked on …"), "" when it is not.
  std::string Revoked(X509* cert) const;
  // The lists in force, for status ("" when none): file, count, next update.
  std::string CrlSummary() const;

  // Use the factories above; public for make_shared and context_internal.h.
  Context(SslCtxPtr ctx, std::string node_id);

 private:
  // The revocation lists in force. Owned by the SSL_CTX (its ex_data), so that
  // a handshake on a connection that outlives this Context still finds them.
  struct CrlState;
  static int VerifyCallback(int preverify_ok, X509_STORE_CTX* store_ctx);
  static std::string RevokedIn(CrlState& state, X509* cert);

  SslCtxPtr ctx_;
  std::string node_id_;
  CrlState* crl_;  // owned by ctx_
};

}  // namespace cairn::tls
