#!/usr/bin/env python3
"""The bounded mesh with real processes (issue 15): 20 cairnd, each told only of
n0, each dialling at most 3 peers and keeping at most 4 active
(--target-peers 3 --max-peers 4). n0 is full almost at once and sends the
others elsewhere with a peer exchange. Every node appends 5 events to its own
device; every node must hold all 100, within the bounds, most streams reaching
it through relays, and status must say why a known peer is not connected.

    bounded_mesh_test.py CAIRND CAIRN CERTS_DIR
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hostile"))
from peer import Network, free_port, wait_for  # noqa: E402

NODES, EVENTS, TARGET, CAP = 20, 5, 3, 4


def main():
    names = [f"n{i}" for i in range(NODES)]
    net = Network(*sys.argv[1:4], names, "cairn-bounded-")
    check = net.check
    try:
        ports = {n: free_port() for n in names}
        for n in names:
            seed = [] if n == "n0" else ["--peer", f"127.0.0.1:{ports['n0']}"]
            net.start(n, ports[n], "--new-device", "--target-peers", str(TARGET),
                      "--max-peers", str(CAP), *seed)
        payload = "".join(json.dumps({"type": "note", "payload": {"i": i}}) + "\n"
                          for i in range(EVENTS))
        for n in names:
            r = net.cli(n, "append", n, "--stdin", input=payload)
            if r.returncode != 0:
                check(False, f"append at {n}: {r.stderr.strip()}")
        t0 = time.monotonic()
        behind = set(names)

        def converged():
            for n in sorted(behind):
                held = {d["device"]: d.get("last", 0)
                        for d in net.status(n).get("devices", [])}
                if all(held.get(d, 0) == EVENTS for d in names):
                    behind.discard(n)
            return not behind

        ok = wait_for(converged, 180, step=0.5)
        check(ok, f"every node holds all {NODES * EVENTS} events of the {NODES} devices "
                  f"({time.monotonic() - t0:.1f} s; behind: {sorted(behind)})")
        statuses = {n: net.status(n) for n in names}
        active = {n: [p for p in s.get("peers", []) if p.get("state") == "active"]
                  for n, s in statuses.items()}
        most = max(len(a) for a in active.values())
        links = sum(len(a) for a in active.values()) // 2
        check(most <= CAP, f"no node has more than {CAP} active peers (most: {most})")
        check(links < NODES * (NODES - 1) // 4,
              f"{links} connections, under half the {NODES * (NODES - 1) // 2} of a full mesh")
        relayed = sum(1 for s in statuses.values() for d in s.get("devices", [])
                      if d.get("via") and d["via"] != d["device"])
        check(relayed > 0, f"{relayed} streams reach a node through a relay, not their source")
        reasons = [p.get("reason", "") for s in statuses.values() for p in s.get("peers", [])
                   if p.get("state") != "active"]
        told = [r for r in reasons if r.startswith("spare") or "peer limit reached" in r]
        check(told, f"status says why known peers are not connected "
                    f"({len(told)} rows, e.g. {told[0] if told else None!r})")
        traffic = [s.get("traffic", {}) for s in statuses.values()]
        sent = sum(t.get("messages_sent", 0) for t in traffic)
        received = sum(t.get("messages_received", 0) for t in traffic)
        check(all(t.get("messages_sent", 0) > 0 and t.get("bytes_received", 0) > 0
                  for t in traffic) and 0 < received <= sent,
              f"status counts each node's traffic: {sent} messages sent, {received} "
              f"received in all (none received that was not sent)")
        log = net.log("n0")
        check("peer limit reached" in log or any("peer limit reached" in net.log(n)
                                                 for n in names[1:]),
              "a node past the cap was sent elsewhere, and the log says so")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
