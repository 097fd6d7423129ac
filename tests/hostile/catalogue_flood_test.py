#!/usr/bin/env python3
"""A peer announcing a million devices (issue 15), against real cairnd processes.

Mallory holds a valid node certificate and sends a full catalogue of 1,000,000
invented device ids in parts, as an honest node with that many would. Two
victims hear it:

  narrow  follows only `src` (--follow src): entries it did not ask for are
          dropped as they arrive; it keeps mallory, and its memory stays flat.
  all     follows every device (the default): it keeps entries up to the limit
          of 250,000 per peer, then closes mallory with the reason. Its growth
          before the close is what narrow would hold without its interest: the
          check on narrow's growth could fail, and here it is seen to matter.

After each: an honest append at src still reaches the victim.

    catalogue_flood_test.py CAIRND CAIRN CERTS_DIR
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer import (CATALOGUE, HostilePeer, Network, envelope, field_bytes,  # noqa: E402
                  field_uint, free_port, rss_mb, wait_for)

DEVICES = 1_000_000
PER_PART = 8_000  # entries per Catalogue message (~250 KiB, like an honest node's parts)
NARROW_BOUND_MB = 20


def parts():
    """The parts of one full catalogue of DEVICES invented ids."""
    for start in range(0, DEVICES, PER_PART):
        entries = b"".join(
            field_bytes(2, field_bytes(1, f"ghost-device-{i:09d}") + field_uint(2, 1) +
                        field_uint(3, 1000 + i))
            for i in range(start, min(start + PER_PART, DEVICES)))
        first, more = start == 0, start + PER_PART < DEVICES
        flags = (field_uint(1, 1) if first else field_uint(4, 1)) + (field_uint(3, 1) if more else b"")
        yield envelope(CATALOGUE, flags + entries)


def main():
    net = Network(*sys.argv[1:4], ["src", "narrow", "all", "mallory"], "cairn-flood-")
    check = net.check
    honest = ["--new-device", "--peer-exchange", "off"]
    try:
        sport = free_port()
        net.start("src", sport, *honest)
        appended = [0]

        def honest_append_arrives(victim):
            appended[0] += 1
            net.cli("src", "append", "src", "--stdin",
                    input=json.dumps({"type": "note", "payload": appended[0]}) + "\n")

            def arrived():
                d = next((d for d in net.status(victim).get("devices", [])
                          if d["device"] == "src"), {})
                return d.get("last", 0) >= appended[0]
            return wait_for(arrived, 30)

        growth = {}
        for victim, extra in (("narrow", ["--follow", "src"]), ("all", [])):
            port = free_port()
            proc = net.start(victim, port, *honest, "--peer", f"127.0.0.1:{sport}", *extra)
            check(honest_append_arrives(victim), f"{victim}: src's events arrive before")
            before = rss_mb(proc.pid)
            peak = before
            sent = 0
            with HostilePeer("127.0.0.1", port, net.pki, "mallory") as m:
                for part in parts():
                    m.send_many([part])
                    sent += 1
                    if sent % 10 == 0:
                        peak = max(peak, rss_mb(proc.pid))
                    if m.closed:
                        break
                wait_for(lambda: m.closed, 5)
                peak = max(peak, rss_mb(proc.pid))
                growth[victim] = peak - before
                log = net.log(victim)
                if victim == "narrow":
                    check(not m.closed, f"narrow keeps mallory ({sent} parts sent)")
                    check(growth[victim] < NARROW_BOUND_MB,
                          f"narrow's memory grew {growth[victim]:.1f} MiB for a million "
                          f"entries it did not ask for (bound {NARROW_BOUND_MB})")
                else:
                    check(m.closed and "catalogue exceeds 250000 devices" in log,
                          f"all closed mallory at the per-peer limit after {sent} of "
                          f"{DEVICES // PER_PART} parts")
                    check(growth[victim] > 2 * growth["narrow"] + 10,
                          f"and grew {growth[victim]:.1f} MiB before: what narrow's "
                          f"interest spared it ({growth['narrow']:.1f} MiB)")
                check(honest_append_arrives(victim), f"{victim}: src's events still arrive")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
