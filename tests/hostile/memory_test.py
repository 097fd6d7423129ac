#!/usr/bin/env python3
"""What one certificate of the network can make a node hold (issue 14, items 2
and 4), against a real cairnd.

Mallory holds a valid node certificate. The victim follows device src through
the honest node src. Mallory tries, one after the other:

  1. Half-open connections: many TLS connections with its certificate that never
     say hello, each with a partial frame. At most 4 of one certificate may be
     waiting for their hello (more are closed at once), the first frame (the
     hello) may be at most 64 KiB, and a hello must come within 5 s.
  2. A ping flood it never reads: the pongs are coalesced into one write buffer
     per connection, bounded by the write limit, and a peer that does not read
     what fills it is closed.
  3. Snapshot chunks of an invented device: the header is checked (the device
     certificate from the CA, its signature) before any chunk is held.
  4. Junk chunks under a genuine header (signed with a real device key, as a
     replay of a real snapshot's header would be): staged on disk in parts as
     they come, so memory holds one part, not the snapshot. (a) A whole junk
     snapshot larger than the 256 MiB that used to be held in memory: refused
     at the install (its digest), the peer closed, what it staged deleted.
     (b) One that never ends: the peer closed at the per-snapshot limit
     (--max-snapshot-bytes, here 300 MB). (c) Two at once, each within that
     limit, together past the node's (--max-staged-bytes, here 320 MB): the
     peer staging the most is closed.

After each: the victim's memory has grown by less than a stated bound, an honest
append at src still reaches the victim, and the log names mallory and the limit.

    memory_test.py CAIRND CAIRN CERTS_DIR
"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer import (CATALOGUE, PING, SNAPSHOT, STREAM_HEADER, SUBSCRIBE, HostilePeer,  # noqa: E402
                  Network, envelope, field_bytes, field_uint, free_port, is_closed, rss_mb,
                  tls_socket, wait_for)

HALF_OPEN = 100            # connections that never say hello
PARTIAL = 60 << 10         # bytes of a partial first frame on each
BIG_OPEN = 20              # and connections that start a 4 MiB first frame
BIG = (4 << 20) - 64
PINGS = 2_000_000          # pings mallory sends and never reads the pongs of
CHUNKS = 64                # 1 MiB snapshot chunks of an invented device
GROWTH_BOUND_MB = 40       # per attack (the write limit is 9 MiB; ASan quarantine kept at 8 MiB)
# Junk staged on disk: the credit window (8 MiB), a part in hand and one on its
# way to disk (4 MiB each), LevelDB's memtable and the one being flushed (16 MiB
# each), the ASan quarantine (8 MiB): 56 MiB, whatever the snapshot's size.
STAGING_BOUND_MB = 64
# Two snapshots at once: each stream has its own credit window and parts (16 MiB
# more); LevelDB and the quarantine are shared.
STAGING_TWO_BOUND_MB = STAGING_BOUND_MB + 16


def catalogue(device, last):
    entry = field_bytes(1, device) + field_uint(2, 1) + field_uint(3, last)
    return envelope(CATALOGUE, field_uint(1, 1) + field_bytes(2, entry))


def snapshot_chunk(device, index, chunks):
    header = (field_bytes(1, device) + field_uint(2, 1000) + field_bytes(3, b"h" * 32) +
              field_bytes(4, b"d" * 32) + field_uint(5, chunks) + field_bytes(7, b"s" * 64))
    # Many tiny entries: parsed, each takes many times its 4 bytes on the wire.
    return chunk_of(header, index, field_bytes(1, field_bytes(2, "k")))


def chunk_of(header, index, entry):
    """A Snapshot message: chunk `index` under `header`, 1 MiB of `entry`."""
    body = entry * ((1 << 20) // len(entry))
    return envelope(SNAPSHOT, field_bytes(1, header) + field_uint(2, index) +
                    field_bytes(3, body))


SNAPSHOT_LIMIT = 300_000_000  # the victim's --max-snapshot-bytes
STAGED_LIMIT = 320_000_000    # and its --max-staged-bytes
JUNK_CHUNKS = 280             # 4a: more than the 256 MiB once held in memory


def lp(b):
    return len(b).to_bytes(4, "big") + b


def signed_header(pki, device, seq, chunks):
    """A snapshot header signed with `device`'s key: the signature checks out, the
    digest (of chunks never sent whole) is made up."""
    h, digest, time_us = os.urandom(32), os.urandom(32), 1
    msg = (b"cairn.snapshot.v1" + lp(device.encode()) + seq.to_bytes(8, "big") + h +
           time_us.to_bytes(8, "big") + chunks.to_bytes(4, "big") + digest)
    with tempfile.NamedTemporaryFile() as f:
        f.write(msg)
        f.flush()
        sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey",
                              os.path.join(pki, device + ".key"), "-in", f.name],
                             check=True, capture_output=True).stdout
    return (field_bytes(1, device) + field_uint(2, seq) + field_bytes(3, h) +
            field_bytes(4, digest) + field_uint(5, chunks) + field_uint(6, time_us) +
            field_bytes(7, sig))


def junk_chunk(header, index):
    return chunk_of(header, index,
                    field_bytes(1, field_bytes(2, "k") + field_bytes(3, field_bytes(1, "v" * 1000))))


def main():
    net = Network(*sys.argv[1:4], ["src", "victim", "mallory"], "cairn-memory-")
    check = net.check
    honest = ["--new-device", "--peer-exchange", "off"]
    appended = [0]

    def last(name, dev):
        d = next((d for d in net.status(name).get("devices", []) if d["device"] == dev), {})
        return d.get("last", 0)

    def honest_append_arrives(after):
        appended[0] += 1
        net.cli("src", "append", "src", "--stdin",
                input=json.dumps({"type": "note", "payload": {"after": after}}) + "\n")
        t0 = time.monotonic()
        ok = wait_for(lambda: last("victim", "src") == appended[0], 20)
        check(ok, f"after {after}: an honest append reached the victim in "
                  f"{time.monotonic() - t0:.1f} s")

    def growth(victim, base, what):
        rss = rss_mb(victim.pid)
        check(rss - base < GROWTH_BOUND_MB,
              f"{what}: victim RSS {base:.0f} -> {rss:.0f} MiB "
              f"(+{rss - base:.0f}, bound +{GROWTH_BOUND_MB})")

    try:
        sport, vport = free_port(), free_port()
        net.start("src", sport, *honest)
        victim = net.start("victim", vport, *honest, "--peer", f"127.0.0.1:{sport}",
                           "--max-snapshot-bytes", str(SNAPSHOT_LIMIT),
                           "--max-staged-bytes", str(STAGED_LIMIT))
        honest_append_arrives("start")
        base = rss_mb(victim.pid)

        # 1. Half-open connections.
        socks = []
        for _ in range(HALF_OPEN):
            try:
                s = tls_socket("127.0.0.1", vport, net.pki, "mallory")
                s.sendall((PARTIAL + 1).to_bytes(4, "big") + b"x" * PARTIAL)
                socks.append(s)
            except OSError:
                pass  # refused or reset: what a cap does
        bigs = []
        for _ in range(BIG_OPEN):
            try:
                s = tls_socket("127.0.0.1", vport, net.pki, "mallory")
                bigs.append(s)
                s.sendall((BIG + 1).to_bytes(4, "big") + b"x" * BIG)
            except OSError:
                pass  # closed by the node: what the first-frame limit does
        time.sleep(1)
        growth(victim, base, f"{len(socks)} half-open connections of mallory, "
                             f"{len(bigs)} more with a 4 MiB first frame")
        check(all(is_closed(s, 0.5) for s in bigs),
              "every connection that starts a 4 MiB first frame is closed")
        for s in bigs:
            s.close()
        open_now = sum(1 for s in socks if not is_closed(s, 0.05))
        check(open_now <= 4, f"{open_now} of them still open (at most 4 before their hello)")
        check(wait_for(lambda: all(is_closed(s, 0.05) for s in socks), 10),
              "every one is closed within the hello timeout")
        for s in socks:
            s.close()
        big = tls_socket("127.0.0.1", vport, net.pki, "mallory")
        big.sendall((4 << 20).to_bytes(4, "big"))
        check(is_closed(big, 3), "a first frame announcing 4 MiB closes the connection")
        big.close()
        check("have not completed their hello (limit 4)" in net.log("victim"),
              "the log names mallory and the limit of connections before hello")
        honest_append_arrives("half-open connections")

        # 2. A ping flood that is never read.
        base = rss_mb(victim.pid)
        m = HostilePeer("127.0.0.1", vport, net.pki, "mallory", keep_reading=False)
        ping = envelope(PING, field_uint(1, 7))
        t0 = time.monotonic()
        for _ in range(20):
            m.send_many([ping] * (PINGS // 20))
            if m.closed:
                break
        closed = wait_for(lambda: "it does not read" in net.log("victim"), 30)
        check(closed, f"the victim closed mallory for not reading "
                      f"({time.monotonic() - t0:.1f} s into the flood)")
        growth(victim, base, "a ping flood never read")
        m.close()
        honest_append_arrives("the ping flood")

        # 3. Snapshot chunks of an invented device.
        base = rss_mb(victim.pid)
        with HostilePeer("127.0.0.1", vport, net.pki, "mallory") as m:
            m.send(catalogue("ghost", 1000))
            subscribed = wait_for(lambda: m.received.get(SUBSCRIBE, 0) > 0, 10)
            check(subscribed, "the victim subscribed to ghost through mallory")
            m.send(envelope(STREAM_HEADER, field_bytes(1, "ghost")))
            for i in range(1, CHUNKS + 1):
                m.send_many([snapshot_chunk("ghost", i, CHUNKS)])
                if m.closed:
                    break
            check(wait_for(lambda: m.closed, 10), "mallory is closed")
        growth(victim, base, f"up to {CHUNKS} MiB of snapshot chunks for an invented device")
        check("refused a snapshot header: no certificate known for device 'ghost'"
              in net.log("victim"), "the log says why the snapshot was refused")
        check(last("victim", "ghost") == 0, "nothing of ghost was stored")
        honest_append_arrives("the snapshot chunks")

        # 4. Junk chunks under a genuine header of a real device.
        der = {}
        for dev in ("dx", "dy"):
            subprocess.run([os.path.join(sys.argv[3], "make-device.sh"), net.pki, dev],
                           check=True, capture_output=True)
            der[dev] = subprocess.run(
                ["openssl", "x509", "-in", os.path.join(net.pki, dev + ".crt"), "-outform",
                 "DER"], check=True, capture_output=True).stdout

        def junk_snapshot(seq, chunks, send, devices=("dx",)):
            """Sends `send` junk chunks under genuine headers of `chunks` for each of
            `devices`, in turn; returns (closed, chunks sent, peak RSS growth in
            MiB, seconds, goodbye)."""
            headers = {d: signed_header(net.pki, d, seq, chunks) for d in devices}
            base = rss_mb(victim.pid)
            peak = base
            t0 = time.monotonic()
            with HostilePeer("127.0.0.1", vport, net.pki, "mallory") as m:
                entries = b"".join(
                    field_bytes(2, field_bytes(1, d) + field_uint(2, 1) + field_uint(3, seq))
                    for d in devices)
                m.send(envelope(CATALOGUE, field_uint(1, 1) + entries))
                check(wait_for(lambda: m.received.get(SUBSCRIBE, 0) >= len(devices), 10),
                      f"the victim subscribed to {', '.join(devices)} through mallory")
                for d in devices:
                    m.send(envelope(STREAM_HEADER, field_bytes(1, d) + field_bytes(2, der[d])))
                sent = 0
                for i in range(1, send + 1):
                    for d in devices:
                        chunk = junk_chunk(headers[d], i)
                        # Within the credit granted, as an honest server sends:
                        # what is tried is the staging, not the credit.
                        if not m.spend(len(chunk)):
                            break
                        m.send_many([chunk])
                        if m.closed:
                            break
                        sent += 1
                    if m.closed:
                        break
                    if i % 16 == 0:
                        peak = max(peak, rss_mb(victim.pid))
                closed = wait_for(lambda: m.closed, 60)
                peak = max(peak, rss_mb(victim.pid))
                return closed, sent, peak - base, time.monotonic() - t0, m.goodbye

        # (a) A whole junk snapshot, past what used to be held in memory.
        closed, sent, grew, took, bye = junk_snapshot(1000, JUNK_CHUNKS, JUNK_CHUNKS)
        check(closed and sent == JUNK_CHUNKS,
              f"mallory sent all {sent} junk chunks of 1 MiB under a genuine header and "
              f"was closed at the install, {took:.1f} s ({bye})")
        check(grew < STAGING_BOUND_MB,
              f"victim RSS grew {grew:.0f} MiB while {sent} MiB were staged on disk "
              f"(bound +{STAGING_BOUND_MB})")
        check("entries do not match the signed digest" in net.log("victim") and
              "mallory" in net.log("victim"),
              "the log names mallory and the digest the staged snapshot failed")
        check(last("victim", "dx") == 0, "nothing of dx was installed")
        # (b) A snapshot that never ends: the per-snapshot limit closes it.
        closed, sent, grew, took, bye = junk_snapshot(2000, 1000, 1000)
        check(closed and sent <= (SNAPSHOT_LIMIT >> 20) + 9,  # + the credit window
              f"mallory is closed after {sent} chunks of 1 MiB of a 1000-chunk junk "
              f"snapshot, {took:.1f} s ({bye})")
        check(grew < STAGING_BOUND_MB,
              f"victim RSS grew {grew:.0f} MiB (bound +{STAGING_BOUND_MB})")
        check(f"over the limit of {SNAPSHOT_LIMIT}" in net.log("victim"),
              "the log names the snapshot limit")
        check(last("victim", "dx") == 0, "nothing of dx was installed")
        # (c) Two snapshots at once, each under its own limit, over the node's
        # --max-staged-bytes together: the peer staging the most is closed.
        closed, sent, grew, took, bye = junk_snapshot(3000, 1000, 1000, ("dx", "dy"))
        check(closed and sent <= (STAGED_LIMIT >> 20) + 18,  # + two credit windows
              f"mallory is closed after {sent} chunks of 1 MiB of two junk snapshots, "
              f"{took:.1f} s ({bye})")
        check("staged on disk, the most while this node holds" in net.log("victim") and
              f"over its limit of {STAGED_LIMIT}" in net.log("victim"),
              "the log names the node's staging limit")
        check(grew < STAGING_TWO_BOUND_MB,
              f"victim RSS grew {grew:.0f} MiB (bound +{STAGING_TWO_BOUND_MB})")
        check(last("victim", "dy") == 0, "nothing of dy was installed")
        honest_append_arrives("junk chunks under a genuine header")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
