#!/usr/bin/env bash
# make-reader.sh DIR NAME [GLOB...]: makes DIR/NAME.key (Ed25519, mode 0600) and
# DIR/NAME.crt, signed by the CA in DIR, CN = NAME: a reader certificate, for
# `cairn tail --peer` (a dashboard, an export job). It is a TLS client only, so it
# cannot act as a node: nodes let it subscribe and nothing else (no catalogue, no
# peer exchange, no serving, never followed). Each GLOB (fnmatch: * ? [...]) names
# devices it may read, e.g. 'sensor-*'; nodes show it only those and refuse a
# subscription to any other. No GLOB: every device.
#   CAIRN_CERT_DAYS  validity in days (default: 825)
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

[[ $# -ge 2 ]] || die "usage: $prog DIR NAME [GLOB...]"
dir=$1 name=$2
shift 2
check_name "$name"
require_openssl
require_ca "$dir"
refuse_existing_key "$dir/$name.key"
ext=$READER_EXT
if [[ $# -gt 0 ]]; then
  uris=()
  allowed='^[]A-Za-z0-9._:@*?[!-]{1,128}$'
  for glob in "$@"; do
    [[ $glob =~ $allowed ]] ||
      die "invalid device glob '$glob': device id characters and * ? [ ] ! only"
    uris+=("URI:cairn-read:$glob")
  done
  ext+=$'\n'"subjectAltName=$(IFS=,; echo "${uris[*]}")"
fi

make_key "$dir/$name.key"
issue_cert "$dir" "$name" "$ext"
done_ok
echo "$prog: wrote $dir/$name.key and $dir/$name.crt (CN=$name, reader: ${*:-every device})"
