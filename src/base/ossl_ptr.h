// Owners for the OpenSSL objects Cairn holds: std::unique_ptr types whose deleter
// is the matching OpenSSL free function, so no module writes its own. Header only;
// a module that includes it links OpenSSL itself (src/base does not).
//
// Thread-safety: the types are as safe as the objects they own.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

namespace cairn {

template <typename T, void (*Free)(T*)>
struct OsslFree {
  void operator()(T* p) const { Free(p); }
};

using SslPtr = std::unique_ptr<SSL, OsslFree<SSL, SSL_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OsslFree<SSL_CTX, SSL_CTX_free>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, OsslFree<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, OsslFree<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, OsslFree<BIO, BIO_free_all>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OsslFree<X509_CRL, X509_CRL_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OsslFree<X509_STORE, X509_STORE_free>>;
using X509StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, OsslFree<X509_STORE_CTX, X509_STORE_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, OsslFree<EVP_MD_CTX, EVP_MD_CTX_free>>;

}  // namespace cairn
