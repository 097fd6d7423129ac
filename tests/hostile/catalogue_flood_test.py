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

Then catalogue summaries (sync/summary.h), which cost the receiver a pass over
its own catalogue each: a want for a summary never sent and summaries cut to
another interest are ignored; an answer nobody asked for, a summary of the
wrong shape, and summaries faster than four a second close mallory with the
reason; the honest stream still arrives. And the other messages of interest
and holdings: 2,000 interests and 500 full-size holdings as fast as mallory can
send them keep mallory (one catalogue restart a second, one holdings forward
per 5 s) and cost a bounded RSS; holdings over 64 KiB, over 16 hashes or with
over 90% of their bits set close it with the reason.

    catalogue_flood_test.py CAIRND CAIRN CERTS_DIR
"""
import hashlib
import json
import os
import struct
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


INTEREST, HOLDINGS, CATALOGUE_WANT = 14, 15, 16
FLOOD_BOUND_MB = 40


def interest_digest(patterns):
    """sync::InterestDigest: the first 8 bytes of SHA-256 of the sorted patterns,
    each followed by a newline, read big-endian."""
    d = hashlib.sha256(b"".join(p.encode() + b"\n" for p in sorted(patterns))).digest()
    return int.from_bytes(d[:8], "big")


def summary(sid, bits, sums=None, interest=("src",)):
    """A Catalogue carrying a CatalogueSummary of 2^bits sums (or `sums` of them),
    cut to `interest` (narrow's: a summary cut to another is ignored)."""
    n = (1 << bits) if sums is None else sums
    packed = b"".join(struct.pack("<Q", 0x9E3779B97F4A7C15 * (i + 1) % 2**64) for i in range(n))
    body = (field_uint(1, sid) + field_uint(2, bits) + b"\x19" +
            struct.pack("<Q", interest_digest(interest)) + field_bytes(4, packed))
    return envelope(CATALOGUE, field_bytes(5, body))


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
        ports = {}
        for victim, extra in (("narrow", ["--follow", "src"]), ("all", [])):
            port = ports[victim] = free_port()
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

        port = ports["narrow"]

        def mallory_says(what, messages, reason):
            with HostilePeer("127.0.0.1", port, net.pki, "mallory") as m:
                # Once the victim has taken mallory as a peer (its catalogue came):
                # before that, sync messages are not delivered.
                check(wait_for(lambda: m.received.get(CATALOGUE, 0) > 0, 10),
                      f"{what}: the victim took mallory as a peer")
                m.send_many(messages)
                closed = wait_for(lambda: m.closed, 10 if reason else 3)
                if reason is None:
                    check(not closed, f"{what}: ignored, mallory kept")
                else:
                    # Sync logs its closes; discovery says its reason in the Goodbye.
                    check(closed and (reason in net.log("narrow") or reason in m.goodbye),
                          f"{what}: mallory closed ({reason!r} in the log or goodbye)")

        mallory_says("a want for a summary never sent",
                     [envelope(CATALOGUE_WANT, field_uint(1, 12345) + field_bytes(2, b"\xff"))],
                     None)
        mallory_says("an answer nobody asked for", [envelope(CATALOGUE, field_uint(6, 1))],
                     "a catalogue answer nobody asked for")
        mallory_says("a summary of 2^13 buckets", [summary(1, 13)], "a catalogue summary of")
        mallory_says("a summary with a sum missing", [summary(1, 4, sums=15)],
                     "a catalogue summary of 15 sums")
        mallory_says("ten summaries cut to another interest: ignored",
                     [summary(i + 1, 12, interest=("*",)) for i in range(10)], None)
        mallory_says("ten summaries of 4,096 sums at once",
                     [summary(i + 1, 12) for i in range(10)],
                     "catalogue summaries faster than 4 a second")
        check(honest_append_arrives("narrow"), "narrow: src's events still arrive")

        def holdings(size, hashes=7, fill=0x55):
            return envelope(HOLDINGS, field_bytes(1, bytes([fill]) * size) +
                            field_uint(2, hashes) + field_uint(3, 1000))

        narrow_pid = net.procs[1].pid
        before = rss_mb(narrow_pid)
        interests = [envelope(INTEREST, field_bytes(1, f"ghost-{i}-*")) for i in range(2000)]
        mallory_says("2,000 interests and 500 holdings of 64 KiB at once",
                     interests + [holdings(64 << 10)] * 500, None)
        grew = rss_mb(narrow_pid) - before
        check(grew < FLOOD_BOUND_MB,
              f"narrow's RSS grew {grew:.1f} MiB under the flood (bound {FLOOD_BOUND_MB})")
        mallory_says("holdings of 64 KiB + 1", [holdings((64 << 10) + 1)], "bytes, over 65536")
        mallory_says("holdings of 17 hashes", [holdings(1024, hashes=17)], "hashes, over 16")
        mallory_says("holdings with every bit set", [holdings(1024, fill=0xFF)],
                     "over 90% of their bits set")
        check(honest_append_arrives("narrow"), "narrow: src's events still arrive at the end")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
