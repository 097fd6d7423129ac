// Dev certificates for `cairnd --dev`: one dev CA per user, shared by every dev
// node of that user, and one node certificate per data directory, made on first
// start with the certs/ scripts (so dev and real networks use the very same
// openssl calls).
//
//   CA:    $CAIRN_DEV_CA, else $XDG_DATA_HOME/cairn/dev-ca, else
//          ~/.local/share/cairn/dev-ca   (ca.crt, ca.key)
//   node:  the same directory, NAME.crt and NAME.key, where NAME is kept in
//          DATA/dev-node-id (made from the data directory's name on first start)
//   scripts: $CAIRN_CERTS_DIR, else the source tree's certs/
//
// Thread-safety: blocking; call from main before the loop runs. Concurrent dev
// nodes serialise on a lock file in the CA directory.
#pragma once

#include <string>

#include "base/result.h"

namespace cairn::node {

struct CertFiles {
  std::string ca;
  std::string cert;
  std::string key;
};

std::string DevCaDir();
// Makes (if missing) the dev CA and this data directory's node certificate.
// REQUIRES: data_dir exists.
Result<CertFiles> EnsureDevCerts(const std::string& data_dir);

}  // namespace cairn::node
