#!/usr/bin/env python3
"""make-devices.py DIR N [PREFIX]: N device identities at once, signed by the CA in
DIR: DIR/PREFIXnnnnn.key (Ed25519, mode 0600) and .crt, the same certificates as
make-device.sh makes one at a time (CN = name, CA:FALSE, digitalSignature, the
document-signing extended key usage only), in one process: 10,000 in seconds
where one openssl run per device takes minutes. Existing keys are never
overwritten: their names are skipped.
  CAIRN_CERT_DAYS  validity in days (default: 825)
"""
import datetime
import os
import re
import secrets
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID, ObjectIdentifier

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # RFC 9336
NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def die(msg):
    print(f"make-devices: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) not in (3, 4):
        die("usage: make-devices.sh DIR N [PREFIX]   (PREFIX: dev-)")
    d, prefix = sys.argv[1], sys.argv[3] if len(sys.argv) == 4 else "dev-"
    try:
        n = int(sys.argv[2])
    except ValueError:
        die(f"N must be a number, not {sys.argv[2]!r}")
    if not 0 < n <= 1_000_000:
        die("N must be between 1 and 1,000,000")
    if not NAME.match(prefix + "0"):
        die(f"prefix {prefix!r} makes names that are not device ids")
    try:
        with open(os.path.join(d, "ca.crt"), "rb") as f:
            ca = x509.load_pem_x509_certificate(f.read())
        with open(os.path.join(d, "ca.key"), "rb") as f:
            ca_key = serialization.load_pem_private_key(f.read(), password=None)
    except (OSError, ValueError) as e:
        die(f"no usable CA in {d} (make it with make-ca.sh): {e}")
    days = int(os.environ.get("CAIRN_CERT_DAYS", "825"))
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    width = max(5, len(str(n - 1)))
    made = skipped = 0
    for i in range(n):
        name = f"{prefix}{i:0{width}d}"
        key_path = os.path.join(d, name + ".key")
        if os.path.exists(key_path):
            skipped += 1
            continue
        key = ed25519.Ed25519PrivateKey.generate()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
                .issuer_name(ca.subject)
                .public_key(key.public_key())
                .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1)
                .not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                             False, False), True)
                .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING]), False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               False)
                .add_extension(aki, False)
                .sign(ca_key, None))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(os.path.join(d, name + ".crt"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        made += 1
    print(f"make-devices: wrote {made} device identities {prefix}{0:0{width}d}.."
          f"{prefix}{n - 1:0{width}d} in {d}" +
          (f" ({skipped} existed and were kept)" if skipped else ""))


if __name__ == "__main__":
    main()
