#!/usr/bin/env python3
"""A client that is not TLS: raw_client.py MODE HOST PORT TIMEOUT_S.

MODE: cleartext-frame (a length-prefixed Envelope carrying a Hello, as a peer
would send it inside TLS), random (4 KiB of random bytes) or silent (connects and
sends nothing). Waits for the server to close the connection and prints one JSON
line: {"mode", "closed": bool, "after_s": seconds, "received": bytes}.
"""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer import field_bytes as field  # noqa: E402


def cleartext_hello():
    hello = field(1, b"mallory") + bytes([0x10, 2])  # node_id, protocol_version 2
    envelope = field(1, hello)  # Envelope.hello
    return len(envelope).to_bytes(4, "big") + envelope


def main():
    mode, host, port, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    payload = {"cleartext-frame": cleartext_hello(), "random": os.urandom(4096),
               "silent": b""}[mode]
    s = socket.create_connection((host, port), timeout=timeout)
    start = time.monotonic()
    received, closed = 0, False
    try:
        if payload:
            s.sendall(payload)
        while time.monotonic() - start < timeout:
            s.settimeout(max(0.05, timeout - (time.monotonic() - start)))
            data = s.recv(65536)
            if not data:
                closed = True
                break
            received += len(data)
    except (socket.timeout, TimeoutError):
        pass
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    finally:
        s.close()
    print(json.dumps({"mode": mode, "closed": closed,
                      "after_s": round(time.monotonic() - start, 2), "received": received}))


if __name__ == "__main__":
    main()
