#!/usr/bin/env bash
# End-to-end test of certs/*.sh: makes a CA, node and device certificates in a
# temporary folder, checks modes, names and refusals, and that what the scripts make
# loads into src/tls and handshakes (through tls_certs_probe).
#   certs_test.sh PROBE CERTS_DIR
set -uo pipefail
probe=$1
certs=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-certs-test-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect_ok DESCRIPTION COMMAND...: the command succeeds.
expect_ok() {
  local what=$1
  shift
  "$@" >"$tmp/out" 2>&1 || fail "$what: exit $? ($(cat "$tmp/out"))"
}

# expect_refused DESCRIPTION TEXT COMMAND...: the command fails and says TEXT.
expect_refused() {
  local what=$1 text=$2
  shift 2
  if "$@" >"$tmp/out" 2>&1; then
    fail "$what: succeeded, expected a refusal"
  elif ! grep -qF -- "$text" "$tmp/out"; then
    fail "$what: message lacks '$text': $(cat "$tmp/out")"
  fi
}

mode() { stat -c %a "$1"; }

pki=$tmp/pki
expect_ok "make-ca" "$certs/make-ca.sh" "$pki"
expect_ok "make-node n1" "$certs/make-node.sh" "$pki" n1
expect_ok "make-node n2" "$certs/make-node.sh" "$pki" n2
expect_ok "make-device d1" "$certs/make-device.sh" "$pki" d1

for key in ca n1 n2 d1; do
  [[ $(mode "$pki/$key.key") == 600 ]] || fail "$key.key has mode $(mode "$pki/$key.key")"
  [[ -s $pki/$key.crt ]] || fail "$key.crt missing"
done
for name in n1 d1; do
  subject=$(openssl x509 -in "$pki/$name.crt" -noout -subject)
  [[ $subject == "subject=CN = $name" ]] || fail "$name.crt subject is '$subject'"
  openssl pkey -in "$pki/$name.key" -noout -text | grep -q ED25519 || fail "$name.key not Ed25519"
done
expect_ok "device cert chains to the CA" openssl verify -CAfile "$pki/ca.crt" "$pki/d1.crt"

# What the scripts make works in src/tls: n1 serves, n2 connects, both verified.
expect_ok "n1 and n2 handshake" "$probe" "$pki/ca.crt" "$pki/n1.crt" "$pki/n1.key" \
  "$pki/n2.crt" "$pki/n2.key"
grep -q "server saw n2; client saw n1" "$tmp/out" || fail "handshake ids: $(cat "$tmp/out")"

# Refusals, each with a clear message.
before=$(sha256sum "$pki/n1.key")
expect_refused "second make-ca" "refusing to overwrite" "$certs/make-ca.sh" "$pki"
expect_refused "second make-node n1" "refusing to overwrite" "$certs/make-node.sh" "$pki" n1
expect_refused "make-device over a node key" "refusing to overwrite" \
  "$certs/make-device.sh" "$pki" n1
[[ $(sha256sum "$pki/n1.key") == "$before" ]] || fail "n1.key changed"
expect_refused "make-node without CA" "no network CA in $tmp/empty" \
  "$certs/make-node.sh" "$tmp/empty" n3
expect_refused "make-device without CA" "certs/make-ca.sh" "$certs/make-device.sh" "$tmp/empty" d3
expect_refused "bad name" "invalid name" "$certs/make-node.sh" "$pki" "../n4"
expect_refused "reserved name" "reserved" "$certs/make-node.sh" "$pki" ca
expect_refused "usage" "usage:" "$certs/make-node.sh" "$pki"
[[ ! -e $tmp/empty/n3.key ]] || fail "a key was left behind without a CA"

# src/tls refuses what is not a node identity, naming the file.
expect_refused "device cert as TLS identity" "$pki/d1.crt: certificate not usable for TLS" \
  "$probe" "$pki/ca.crt" "$pki/d1.crt" "$pki/d1.key"
expect_refused "key of another node" "$pki/n2.key: private key does not match" \
  "$probe" "$pki/ca.crt" "$pki/n1.crt" "$pki/n2.key"
expect_ok "other CA" "$certs/make-ca.sh" "$tmp/other"
expect_ok "other node" "$certs/make-node.sh" "$tmp/other" x1
expect_refused "node of another CA" "$tmp/other/x1.crt: not issued by the CA in $pki/ca.crt" \
  "$probe" "$pki/ca.crt" "$tmp/other/x1.crt" "$tmp/other/x1.key"
# The scripts never make an expired certificate; sign one by hand with the same CA.
openssl genpkey -algorithm ed25519 -out "$tmp/old.key" 2>/dev/null
openssl req -new -key "$tmp/old.key" -subj /CN=old -out "$tmp/old.csr"
openssl x509 -req -in "$tmp/old.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -days -1 \
  -set_serial 7 -out "$tmp/old.crt" 2>/dev/null || fail "could not sign an expired cert"
expect_refused "expired node" "$tmp/old.crt: certificate expired on" \
  "$probe" "$pki/ca.crt" "$tmp/old.crt" "$tmp/old.key"

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "certs_test: all checks passed"
