// The subjectAltName URIs of a certificate that start with a prefix, without the
// prefix: "cairn-read:GLOB" of reader certificates (src/tls), "cairn-group:NAME"
// of device certificates (src/journal). Header only, like ossl_ptr.h: a module
// that includes it links OpenSSL itself.
//
// Thread-safety: reads `cert` only.
#pragma once

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <string>
#include <string_view>
#include <vector>

namespace cairn {

// At most `max` of them.
inline std::vector<std::string> SanUrisWithPrefix(X509* cert, std::string_view prefix,
                                                  size_t max = 1024) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  ERR_clear_error();
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && out.size() < max; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    std::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                          static_cast<size_t>(ASN1_STRING_length(uri)));
    if (text.starts_with(prefix)) out.emplace_back(text.substr(prefix.size()));
  }
  GENERAL_NAMES_free(names);
  return out;
}

}  // namespace cairn
