// Test access to src/tls contexts: builds a Context from PEM text WITHOUT the load-time
// checks of Context::FromPem, so that tests can stand up misbehaving peers (an
// expired certificate, one from another CA, no certificate at all). Never use outside
// tests.
#pragma once

#include <memory>
#include <string>

#include "tls/context.h"

namespace cairn::tls::internal {

// `cert_pem` and `key_pem` may both be empty: a peer that presents no certificate.
// The result still requires and verifies the peer's certificate against `ca_pem`.
Result<std::shared_ptr<const Context>> UncheckedContext(const std::string& ca_pem,
                                                        const std::string& cert_pem,
                                                        const std::string& key_pem);

}  // namespace cairn::tls::internal
