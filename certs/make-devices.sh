#!/usr/bin/env bash
# make-devices.sh DIR N [PREFIX]: N device identities signed by the CA in DIR,
# DIR/PREFIXnnnnn.key and .crt (PREFIX: dev-), the certificates make-device.sh
# makes, minted in one process (python3-cryptography): 10,000 in seconds. For a
# node that is the source of many devices (cairnd --devices DIR).
#   CAIRN_CERT_DAYS  validity in days (default: 825)
set -euo pipefail
exec python3 "$(dirname "$0")/make-devices.py" "$@"
