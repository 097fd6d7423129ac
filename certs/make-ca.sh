#!/usr/bin/env bash
# make-ca.sh DIR: makes a network CA, DIR/ca.key (Ed25519, mode 0600) and DIR/ca.crt
# (self-signed). Every node and device certificate of the network is signed by it;
# keep ca.key off the nodes once they have their certificates.
#   CAIRN_CA_NAME   the CA's CN (default: cairn-ca)
#   CAIRN_CA_DAYS   validity in days (default: 3650)
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

[[ $# -eq 1 ]] || die "usage: $prog DIR"
dir=$1
require_openssl
mkdir -p "$dir" || die "cannot create $dir"
refuse_existing_key "$dir/ca.key"

make_key "$dir/ca.key"
openssl req -x509 -new -key "$dir/ca.key" -subj "/CN=${CAIRN_CA_NAME:-cairn-ca}" \
  -days "${CAIRN_CA_DAYS:-3650}" -out "$dir/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" || die "openssl could not write $dir/ca.crt"
chmod 644 "$dir/ca.crt"
done_ok
echo "$prog: wrote $dir/ca.key and $dir/ca.crt"
