#!/usr/bin/env bash
# make-device.sh DIR NAME: makes DIR/NAME.key (Ed25519, mode 0600) and DIR/NAME.crt,
# signed by the CA in DIR, CN = NAME: a device-only certificate. It signs the events
# of the device NAME and cannot serve TLS (its only extended key usage is document
# signing, RFC 9336), so a stolen device key cannot join the network as a node.
#   CAIRN_CERT_DAYS  validity in days (default: 825)
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

[[ $# -eq 2 ]] || die "usage: $prog DIR NAME"
dir=$1 name=$2
check_name "$name"
require_openssl
require_ca "$dir"
refuse_existing_key "$dir/$name.key"

make_key "$dir/$name.key"
issue_cert "$dir" "$name" "$DEVICE_EXT"
done_ok
echo "$prog: wrote $dir/$name.key and $dir/$name.crt (CN=$name, device only)"
