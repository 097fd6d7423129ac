#!/usr/bin/env bash
# revoke.sh DIR [CERT...]: revokes each certificate (a node's or a device's, a file
# made by make-node.sh, make-device.sh or renew.sh) with the CA in DIR, then writes
# DIR/crl.pem, the revocation list nodes read with --crl FILE. Copy it to every node
# and send each cairnd SIGHUP: a peer whose certificate is on the list is
# disconnected within a second and refused from then on.
# With no CERT, writes a fresh list: do so (and copy it) before its next update, as
# a node refuses a list whose next update has passed (see README, Revocation).
# The list of what was revoked is kept in DIR/revoked/ (openssl's CA database).
#   CAIRN_CRL_DAYS     days until the list's next update (default: 30)
#   CAIRN_CRL_SECONDS  seconds instead (tests of an expired list)
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

[[ $# -ge 1 ]] || die "usage: $prog DIR [CERT...]"
dir=$1
shift
require_openssl
require_ca "$dir"
db=$dir/revoked
mkdir -p "$db" || die "cannot create $db"
[[ -f $db/index.txt ]] || : >"$db/index.txt"
[[ -f $db/crlnumber ]] || echo 01 >"$db/crlnumber"
cat >"$tmp/ca.cnf" <<CNF
[ca]
default_ca = cairn
[cairn]
database = $db/index.txt
crlnumber = $db/crlnumber
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = default
default_crl_days = ${CAIRN_CRL_DAYS:-30}
unique_subject = no
CNF

for cert in "$@"; do
  [[ -f $cert ]] || die "$cert: no such certificate"
  openssl verify -CAfile "$dir/ca.crt" "$cert" >/dev/null 2>&1 ||
    openssl verify -no_check_time -CAfile "$dir/ca.crt" "$cert" >/dev/null 2>&1 ||
    die "$cert was not issued by the CA in $dir"
  serial=$(openssl x509 -in "$cert" -noout -serial | cut -d= -f2)
  if grep -q "^R.*[[:space:]]$serial[[:space:]]" "$db/index.txt"; then
    echo "$prog: $cert (serial $serial) was already revoked"
    continue
  fi
  openssl ca -config "$tmp/ca.cnf" -revoke "$cert" 2>"$tmp/err" >/dev/null ||
    die "openssl could not revoke $cert: $(cat "$tmp/err")"
  echo "$prog: revoked $cert (serial $serial, $(openssl x509 -in "$cert" -noout -subject))"
done

period=()
[[ -z ${CAIRN_CRL_SECONDS:-} ]] || period=(-crlsec "$CAIRN_CRL_SECONDS")
openssl ca -config "$tmp/ca.cnf" -gencrl ${period[@]+"${period[@]}"} -out "$tmp/crl.pem" 2>"$tmp/err" >/dev/null ||
  die "openssl could not write the revocation list: $(cat "$tmp/err")"
chmod 644 "$tmp/crl.pem"
mv "$tmp/crl.pem" "$dir/crl.pem"
count=$(grep -c '^R' "$db/index.txt" || true)
echo "$prog: wrote $dir/crl.pem ($count revoked, next update $(openssl crl -in "$dir/crl.pem" -noout -nextupdate | cut -d= -f2))"
