// OpenSSL helpers shared by src/tls: the owners of base/ossl_ptr.h, and the drain of
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

#include "base/ossl_ptr.h"
#include "base/result.h"

namespace cairn::tls {

using cairn::BioPtr;
using cairn::PkeyPtr;
using cairn::SslCtxPtr;
using cairn::SslPtr;
using cairn::X509CrlPtr;
using cairn::X509Ptr;
using cairn::X509StoreCtxPtr;
using cairn::X509StorePtr;

// Empties this thread's OpenSSL error queue and returns its entries joined by "; ",
// most relevant (oldest) first; `fallback` when the queue was empty.
std::string OpenSslErrors(const std::string& fallback = "unknown OpenSSL error");

// The id a certificate names: its one subject CN, which must be a valid node id
// (IsValidNodeId). Fails with the reason otherwise.
Result<std::string> CertificateId(X509* cert);

}  // namespace cairn::tls
