#!/usr/bin/env bash
# renew.sh DIR NAME: issues a new DIR/NAME.crt for the key DIR/NAME.key (kept), with
# the CA in DIR, of the same kind as the old one (node, reader with its devices, or
# device). The old certificate is kept as DIR/NAME.crt.old-TIME. Events a device
# signed under the old certificate stay valid: nodes check a record against the
# device key, and that a certificate of the key had not expired when it was signed
# (see README, Certificates).
# A node picks up its renewed certificate at restart.
#   CAIRN_CERT_DAYS  validity in days (default: 825)
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

[[ $# -eq 2 ]] || die "usage: $prog DIR NAME"
dir=$1 name=$2
check_name "$name"
require_openssl
require_ca "$dir"
[[ -f $dir/$name.key ]] || die "$dir/$name.key: no such key (make one with make-node.sh or make-device.sh)"
[[ -f $dir/$name.crt ]] || die "$dir/$name.crt: no certificate to renew"
cn=$(openssl x509 -in "$dir/$name.crt" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p')
[[ $cn == "$name" ]] || die "$dir/$name.crt is the certificate of '$cn', not '$name'"
old_key=$(openssl x509 -in "$dir/$name.crt" -noout -pubkey)
new_key_pub=$(openssl pkey -in "$dir/$name.key" -pubout)
[[ $old_key == "$new_key_pub" ]] || die "$dir/$name.crt does not carry the key in $dir/$name.key"
eku=$(openssl x509 -in "$dir/$name.crt" -noout -ext extendedKeyUsage 2>/dev/null || true)
if grep -q "TLS Web Server" <<<"$eku"; then
  ext=$NODE_EXT kind="TLS client+server, device"
elif grep -q "TLS Web Client" <<<"$eku"; then
  ext=$READER_EXT kind="reader"
  san=$(openssl x509 -in "$dir/$name.crt" -noout -ext subjectAltName 2>/dev/null |
    sed -n '2,$p' | tr -d ' ' || true)
  [[ -z $san ]] || ext+=$'\n'"subjectAltName=$san"
else
  ext=$DEVICE_EXT kind="device only"
fi
old="$dir/$name.crt.old-$(date -u +%Y%m%dT%H%M%SZ)"
cp -p "$dir/$name.crt" "$old"
# issue_cert writes NAME.crt; should it fail, the old certificate goes back.
if ! (issue_cert "$dir" "$name" "$ext"); then
  cp -p "$old" "$dir/$name.crt"
  die "renewal failed; $dir/$name.crt is the old certificate again"
fi
done_ok
echo "$prog: wrote $dir/$name.crt (CN=$name, $kind; the key is unchanged; the old certificate is $old)"
