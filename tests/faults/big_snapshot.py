#!/usr/bin/env python3
"""A big snapshot reaches a new node (issue 13, defect 3), with real processes.

Source a holds N kv.put events of 1 KiB (distinct keys), snapshots them and
deletes the events below the snapshot (--retain-max-bytes); then a new
node b joins. b must receive the whole snapshot, paced by credit and the
connection's write limit (9 MiB), once (one connection, no reconnects), and hold
the same view: every key, the same revision, a stream that verifies. A snapshot
over about 9 MiB used to be queued whole, the rest refused and skipped, and the new
node reconnected forever behind a gap.

    big_snapshot.py CAIRND CAIRN CERTS_DIR [--long] [--events N]

CI-sized: 14,000 events (a 14 MiB snapshot); --long: 100,000 (about 100 MiB);
--events N: N. b stages the snapshot on disk as it comes (4 MiB parts), so its
memory does not grow with the snapshot: 300,000 events (about 300 MiB, over the
256 MiB once held in memory and refused) go through too. Prints the time b took
and its memory (peak, sampled).
"""
import json
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "hostile"))
from peer import Network, free_port, rss_mb, wait_for  # noqa: E402

VALUE = "v" * 1000


def main():
    cairnd, cairn, certs = sys.argv[1:4]
    args = sys.argv[4:]
    n = 100_000 if "--long" in args else 14_000
    if "--events" in args:
        n = int(args[args.index("--events") + 1])
    net = Network(cairnd, cairn, certs, ["a", "b"], "cairn-bigsnap-")
    check = net.check

    def device(name):
        return next((d for d in net.status(name).get("devices", []) if d["device"] == "a"), {})

    try:
        aport, bport = free_port(), free_port()
        # With no follower known yet, nothing holds events back but a limit: keep
        # at most 1 MB of events, so those below the snapshot go.
        net.start("a", aport, "--new-device", "--peer-exchange", "off",
                  "--retain-every-ms", "500", "--retain-max-bytes", "1MB")
        t0 = time.monotonic()
        batch = 5_000
        for start in range(0, n, batch):
            lines = "".join(
                json.dumps({"type": "kv.put",
                            "payload": {"store": "s", "key": f"k{i}", "value": VALUE}}) + "\n"
                for i in range(start, min(n, start + batch)))
            r = net.cli("a", "append", "a", "--stdin", input=lines)
            if r.returncode != 0:
                raise RuntimeError("append: " + r.stderr)
        r = net.cli("a", "snapshot", "a", timeout=120)
        check(r.returncode == 0 and r.stdout.strip() == str(n),
              f"a snapshot of {n} kv.put events of 1 KiB ({time.monotonic() - t0:.1f} s)")
        check(wait_for(lambda: device("a").get("first", 0) > n // 2, 30),
              f"a deleted the events below its snapshot but its newest 1 MB "
              f"(first {device('a').get('first')})")
        lines = "".join(json.dumps({"type": "note", "payload": {"after": i}}) + "\n"
                        for i in range(10))
        net.cli("a", "append", "a", "--stdin", input=lines)

        t0 = time.monotonic()
        b = net.start("b", bport, "--new-device", "--peer-exchange", "off",
                      "--peer", f"127.0.0.1:{aport}")
        peak = [0.0]

        def arrived():
            peak[0] = max(peak[0], rss_mb(b.pid))
            return device("b").get("last") == n + 10

        ok = wait_for(arrived, 1800 if n > 20_000 else 180)
        took = time.monotonic() - t0
        rss = peak[0]
        d = device("b")
        check(ok, f"b holds a's snapshot at {d.get('snapshot')} and all {n + 10} events "
                  f"{took:.1f} s after it started; b RSS at most {rss:.0f} MiB")
        check(d.get("snapshot") == n, "b installed the snapshot")
        for key in ("k0", f"k{n // 2}", f"k{n - 1}"):
            ra = net.cli("a", "kv", "get", "a", "s", key)
            rb = net.cli("b", "kv", "get", "a", "s", key)
            check(rb.returncode == 0 and ra.stdout == rb.stdout,
                  f"b's view of {key} is a's")
        ra = net.cli("a", "kv", "list", "a", "s", timeout=120)
        rb = net.cli("b", "kv", "list", "a", "s", timeout=120)
        check(ra.returncode == 0 and len(ra.stdout.splitlines()) == n and ra.stdout == rb.stdout,
              f"b lists the same {len(rb.stdout.splitlines())} keys as a")
        r = net.cli("b", "verify", "a", timeout=120)
        check(r.returncode == 0, f"b's copy verifies: {r.stdout.strip()} {r.stderr.strip()}")
        log = net.log("b") + net.log("a")
        check("starting over" not in log and "could not queue" not in log,
              "no stream data was refused and skipped")
        peers = net.status("b").get("peers", [])
        check(any(p.get("state") == "active" for p in peers), "b is still connected to a")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
