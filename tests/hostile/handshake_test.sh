#!/usr/bin/env bash
# Hostile clients against a real cairnd (the victim, V) while a legitimate cairnd
# (H) is connected to it and replicates through it:
#   another CA, no certificate, an expired certificate, TLS 1.2 only (openssl
#   s_client), plain TCP with a cleartext frame, random bytes, a silent client.
# Each must be refused at the handshake with nothing parsed (no peer row, no
# hello), V's log must name the reason where the TLS layer has one, and H must
# keep replicating during and after the attacks.
#   handshake_test.sh CAIRND CAIRN CERTS_DIR
# Bounded: every command runs under `timeout`; every process is killed on exit.
set -euo pipefail
cairnd=$1 cairn=$2 certs=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-hostile-XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [[ $rc -ne 0 ]]; then
    echo "--- victim log (tail)"; tail -40 "$tmp/victim.log" 2>/dev/null || true
    echo "--- honest log (tail)"; tail -20 "$tmp/honest.log" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# ---------------------------------------------------------------- certificates
pki=$tmp/pki evil=$tmp/evil
"$certs/make-ca.sh" "$pki" >/dev/null
"$certs/make-node.sh" "$pki" victim >/dev/null
"$certs/make-node.sh" "$pki" honest >/dev/null
"$certs/make-node.sh" "$pki" visitor >/dev/null
CAIRN_CA_NAME=evil-ca "$certs/make-ca.sh" "$evil" >/dev/null
"$certs/make-node.sh" "$evil" honest >/dev/null  # same name, another CA
# An expired certificate from the right CA (openssl ca can set the dates).
openssl genpkey -algorithm ed25519 -out "$tmp/late.key" 2>/dev/null
openssl req -new -key "$tmp/late.key" -subj /CN=late -out "$tmp/late.csr"
mkdir "$tmp/ca-db" && : >"$tmp/ca-db/index.txt" && echo 01 >"$tmp/ca-db/serial"
cat >"$tmp/ca.cnf" <<EOF
[ca]
default_ca = expired
[expired]
database = $tmp/ca-db/index.txt
new_certs_dir = $tmp/ca-db
serial = $tmp/ca-db/serial
default_md = default
policy = any
x509_extensions = ext
[any]
commonName = supplied
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
EOF
openssl ca -batch -notext -config "$tmp/ca.cnf" -cert "$pki/ca.crt" -keyfile "$pki/ca.key" \
  -startdate 20200101000000Z -enddate 20200201000000Z -in "$tmp/late.csr" \
  -out "$tmp/late.crt" 2>/dev/null || fail "could not make an expired certificate"

# ---------------------------------------------------------------- nodes
node() {  # node NAME [cairnd flags...]: starts cairnd on a free loopback port
  local name=$1
  shift
  "$cairnd" --data "$tmp/$name" --listen 127.0.0.1:0 --ca "$pki/ca.crt" \
    --cert "$pki/$name.crt" --key "$pki/$name.key" --peer-exchange off \
    --sync-writes off "$@" 2>"$tmp/$name.log" &
  pids+=($!)
}
status() { timeout 10 "$cairn" --data "$tmp/$1" status --json; }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2
  shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || fail "timed out waiting for $what"
    sleep 0.1
  done
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

node victim --new-device
wait_for 20 "the victim's control socket" status victim
vport=$(sed -n 's/.*listening for peers on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/victim.log" | head -1)
[[ -n $vport ]] || fail "the victim's log names no listening port"
node honest --new-device --peer "127.0.0.1:$vport"
wait_for 20 "honest's control socket" status honest
replicated() {  # honest's device at the victim has reached $1
  [[ $(status victim | json '[x["last"] for x in d["devices"] if x["device"]=="honest"]+[0]' |
    tr -d '[]' | cut -d, -f1) -ge $1 ]]
}
appended=0
append() {
  local n=$1
  for i in $(seq "$n"); do
    timeout 10 "$cairn" --data "$tmp/honest" append honest note "{\"i\":$i}" >/dev/null
  done
  appended=$((appended + n))
}
append 5
wait_for 30 "honest's first events at the victim" replicated "$appended"
ok "honest node connected and replicating ($appended events)"

# ---------------------------------------------------------------- attacks
python3 "$here/raw_client.py" silent 127.0.0.1 "$vport" 25 >"$tmp/silent.json" &
silent=$!
pids+=($silent)

s_client() {  # s_client NAME ARGS...: a TLS client; its transcript in $tmp/NAME.txt
  local name=$1
  shift
  timeout 10 openssl s_client -connect "127.0.0.1:$vport" -CAfile "$pki/ca.crt" \
    -servername victim "$@" < <(sleep 1.5) >"$tmp/$name.txt" 2>&1 || true
}
refused_tls() {  # refused_tls NAME PATTERN: the client never got application data
  grep -qiE "$2" "$tmp/$1.txt" || {
    cat "$tmp/$1.txt"
    fail "$1: expected /$2/ in the client's transcript"
  }
  ok "$1: refused ($(grep -oiE "$2" "$tmp/$1.txt" | head -1))"
}

s_client other-ca -cert "$evil/honest.crt" -key "$evil/honest.key"
refused_tls other-ca "alert (unknown ca|certificate unknown|bad certificate|decrypt error)"
s_client no-cert
refused_tls no-cert "alert (certificate required|handshake failure)"
s_client expired -cert "$tmp/late.crt" -key "$tmp/late.key"
refused_tls expired "alert (certificate expired|bad certificate|certificate unknown)"
s_client tls12 -tls1_2 -cert "$pki/visitor.crt" -key "$pki/visitor.key"
refused_tls tls12 "alert protocol version|no protocols available|wrong version|unsupported protocol"
append 3  # during the attacks

raw() {  # raw MODE: a plain TCP client; the victim must hang up
  python3 "$here/raw_client.py" "$1" 127.0.0.1 "$vport" 10 >"$tmp/$1.json"
  [[ $(json 'd["closed"]' <"$tmp/$1.json") == True ]] || fail "$1: not closed: $(cat "$tmp/$1.json")"
  ok "$1: closed by the victim after $(json 'd["after_s"]' <"$tmp/$1.json") s"
}
raw cleartext-frame
raw random

wait "$silent" || true
[[ $(json 'd["closed"]' <"$tmp/silent.json") == True ]] || fail "silent client never dropped"
after=$(json 'd["after_s"]' <"$tmp/silent.json")
python3 -c "import sys; sys.exit(0 if 4.5 <= $after <= 10 else 1)" ||
  fail "silent client dropped after $after s, expected the 5 s handshake timeout"
ok "silent: dropped after $after s (handshake timeout 5 s)"

# ---------------------------------------------------------------- the victim
append 4  # after the attacks
wait_for 30 "honest's events after the attacks" replicated "$appended"
ok "honest node still replicating ($appended events)"
peers=$(status victim | json '",".join(sorted(p["id"] or p["address"] for p in d["peers"]))')
[[ $peers == honest ]] || fail "the victim's peer table holds more than honest: $peers"
state=$(status victim | json '[p["state"] for p in d["peers"]][0]')
[[ $state == active ]] || fail "honest is $state at the victim"
ok "victim's peers: $peers ($state); no attacker was parsed into a peer"
grep -q "hello" "$tmp/victim.log" && fail "the victim logged a hello from an attacker"
# The log names why each refused connection ended (when cairnd logs refusals).
if grep -qiE "refused|handshake" "$tmp/victim.log"; then
  grep -iE "refused|handshake" "$tmp/victim.log" | sed 's/^/victim log: /' | head -10
else
  echo "note: the victim's log names no refused handshake (cairnd does not log them)"
fi
echo "PASS"
