#include "tls/ossl.h"

#include <openssl/err.h>

#include "tls/context.h"

namespace cairn::tls {

std::string OpenSslErrors(const std::string& fallback) {
  std::string out;
  // Bounded: the queue holds at most ERR_NUM_ERRORS entries.
  for (int i = 0; i < 32; ++i) {
    unsigned long e = ERR_get_error();
    if (e == 0) break;
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason ? reason : "error " + std::to_string(ERR_GET_REASON(e));
  }
  ERR_clear_error();
  return out.empty() ? fallback : out;
}

Result<std::string> CertificateId(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at < 0) return Status::InvalidArgument("certificate has no CN");
  if (X509_NAME_get_index_by_NID(name, NID_commonName, at) >= 0) {
    return Status::InvalidArgument("certificate has more than one CN");
  }
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return Status::InvalidArgument("certificate CN is not valid text");
  std::string id(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  if (!IsValidNodeId(id)) {
    std::string shown = id.substr(0, 64);
    for (char& c : shown) {
      if (c < 0x20 || c > 0x7e) c = '?';
    }
    return Status::InvalidArgument("certificate CN '" + shown +
                                   "' is not a valid node id");
  }
  return id;
}

}  // namespace cairn::tls
