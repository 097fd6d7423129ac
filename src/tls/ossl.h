// OpenSSL ownership and error helpers shared by src/tls: unique_ptr types with the
// matching free function for every OpenSSL object we hold, and the drain of
// OpenSSL's thread-local error queue into one readable reason.
//
// Internal to src/tls (and its tests). Thread-safety: stateless; the error queue is
// per thread, so call OpenSslErrors() on the thread that made the failing call.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

#include "base/result.h"

namespace cairn::tls {

struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct X509StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct X509StoreCtxFree {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};

using SslPtr = std::unique_ptr<SSL, SslFree>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509StorePtr = std::unique_ptr<X509_STORE, X509StoreFree>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, X509StoreCtxFree>;

// Empties this thread's OpenSSL error queue and returns its entries joined by "; ",
// most relevant (oldest) first; `fallback` when the queue was empty.
std::string OpenSslErrors(const std::string& fallback = "unknown OpenSSL error");

// The id a certificate names: its one subject CN, which must be a valid node id
// (IsValidNodeId). Fails with the reason otherwise.
Result<std::string> CertificateId(X509* cert);

}  // namespace cairn::tls
