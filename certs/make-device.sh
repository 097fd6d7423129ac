#!/usr/bin/env bash
# make-device.sh DIR NAME [--group GROUP]...: makes DIR/NAME.key (Ed25519, mode 0600) and DIR/NAME.crt,
# signed by the CA in DIR, CN = NAME: a device-only certificate. It signs the events
# of the device NAME and cannot serve TLS (its only extended key usage is document
# signing, RFC 9336), so a stolen device key cannot join the network as a node.
# Each --group names a group of the device (a subjectAltName URI
# "cairn-group:GROUP"): nodes can follow every device of a group (`--follow
# group:GROUP`, `cairn follow group:GROUP`).
#   CAIRN_CERT_DAYS  validity in days (default: 825)
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

usage="usage: $prog DIR NAME [--group GROUP]..."
[[ $# -ge 2 ]] || die "$usage"
dir=$1 name=$2
shift 2
check_name "$name"
ext=$DEVICE_EXT
uris=()
while [[ $# -gt 0 ]]; do
  [[ $1 == --group && $# -ge 2 ]] || die "$usage"
  [[ $2 =~ ^[A-Za-z0-9._-]{1,64}$ ]] ||
    die "invalid group '$2': 1 to 64 of [A-Za-z0-9._-]"
  uris+=("URI:cairn-group:$2")
  shift 2
done
if [[ ${#uris[@]} -gt 0 ]]; then
  ext+=$'\n'"subjectAltName=$(IFS=,; echo "${uris[*]}")"
fi
require_openssl
require_ca "$dir"
refuse_existing_key "$dir/$name.key"

make_key "$dir/$name.key"
issue_cert "$dir" "$name" "$ext"
done_ok
echo "$prog: wrote $dir/$name.key and $dir/$name.crt (CN=$name, device only${uris[*]:+, ${uris[*]}})"
