# Shared helpers for the certs/*.sh scripts; sourced, never run on its own.
# Plain openssl, Ed25519 keys, private keys written with mode 0600.

prog=$(basename "$0")

# Files to remove if the script fails: a temporary folder, and a key made by this run
# that never got its certificate (so a retry is not refused for a useless key).
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-certs-XXXXXX")
new_key=""
cleanup() {
  local rc=$?
  rm -rf "$tmp"
  if [[ $rc -ne 0 && -n $new_key ]]; then rm -f "$new_key"; fi
}
trap cleanup EXIT

die() {
  echo "$prog: $*" >&2
  exit 1
}

# Node and device ids: 1 to 64 characters of A-Z a-z 0-9 . _ - (the CN limit), not
# starting with '.' or '-', so that an id is always a safe file name and subject.
check_name() {
  local name=$1
  [[ $name =~ ^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$ ]] ||
    die "invalid name '$name': use 1-64 characters of A-Z a-z 0-9 . _ - (not starting with . or -)"
  [[ $name != ca ]] || die "the name 'ca' is reserved for the network CA files"
}

require_openssl() {
  command -v openssl >/dev/null || die "openssl not found in PATH"
}

# Refuses to replace an existing private key: losing it would orphan every certificate
# and, for a device, the stream it signs.
refuse_existing_key() {
  [[ ! -e $1 ]] || die "$1 already exists; refusing to overwrite a private key (move it away first)"
}

require_ca() {
  local dir=$1
  [[ -f $dir/ca.key && -f $dir/ca.crt ]] ||
    die "no network CA in $dir (need $dir/ca.key and $dir/ca.crt); create one with: certs/make-ca.sh $dir"
}

# Writes a fresh Ed25519 private key to $1 with mode 0600 from the first byte on.
make_key() {
  new_key=$1
  (umask 077 && openssl genpkey -algorithm ed25519 -out "$1") ||
    die "openssl could not write a key to $1"
  chmod 600 "$1"
}

# issue_cert DIR NAME EXTENSIONS: signs a certificate for NAME's key with the CA in DIR.
# EXTENSIONS is the text of an openssl extension section.
issue_cert() {
  local dir=$1 name=$2 extensions=$3
  local days=${CAIRN_CERT_DAYS:-825}
  printf '[ext]\n%s\n' "$extensions" >"$tmp/ext.cnf"
  openssl req -new -key "$dir/$name.key" -subj "/CN=$name" -out "$tmp/req.csr" ||
    die "openssl could not make a request for $name"
  openssl x509 -req -in "$tmp/req.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" \
    -extfile "$tmp/ext.cnf" -extensions ext -out "$dir/$name.crt" 2>"$tmp/err" ||
    die "openssl could not sign $dir/$name.crt: $(cat "$tmp/err")"
  chmod 644 "$dir/$name.crt"
  openssl verify -CAfile "$dir/ca.crt" "$dir/$name.crt" >/dev/null ||
    die "$dir/$name.crt does not verify against $dir/ca.crt"
}

# The extensions of the kinds of certificate (make-node.sh, make-reader.sh,
# make-device.sh, renew.sh). A node serves TLS and signs its own device's events; a
# reader is a TLS client only (nodes let it subscribe, nothing else); a device
# certificate only signs (document signing, RFC 9336), so it cannot act as a node.
NODE_EXT="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
READER_EXT="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
DEVICE_EXT="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=1.3.6.1.5.5.7.3.36
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"

# The run succeeded: keep the key.
done_ok() {
  new_key=""
}
