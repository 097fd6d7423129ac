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
// Thread-safety: Load functions may run on any thread; a built Context is immutable
// and may be shared by connections on any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

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
};

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

  // Use the factories above; public for make_shared and context_internal.h.
  Context(SslCtxPtr ctx, std::string node_id);

 private:
  SslCtxPtr ctx_;
  std::string node_id_;
};

}  // namespace cairn::tls
