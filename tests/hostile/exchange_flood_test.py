#!/usr/bin/env python3
"""A peer exchange flood against a real cairnd (issue 14, item 3).

Mallory holds a valid node certificate of the network. Once its hello is done it
sends five PeerExchange messages of 64 made-up peers (loopback addresses nobody
listens on), then 40 more in a burst. Before the peer table had budgets, that
filled the 256-entry table: a new honest node was refused ("peer table full"),
the victim dialled every made-up address, and they were saved and dialled again
after a restart. Now:
  - at most 8 entries that never completed a hello come from one peer,
  - the surplus and the exchanges beyond the rate are ignored, and the log names
    mallory and the limit,
  - an honest node that joins afterwards is accepted and replicates,
  - after a restart no made-up peer is left (nothing unverified was saved),
  - the victim's memory stays under a bound.

    exchange_flood_test.py CAIRND CAIRN CERTS_DIR
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer import HostilePeer, Network, free_port, peer_exchange, rss_mb, wait_for  # noqa: E402

RSS_BOUND_MB = 400  # sanitized build; the victim's own baseline is well below


def main():
    net = Network(*sys.argv[1:4], ["victim", "mallory", "honest"], "cairn-exchange-flood-")
    check = net.check

    def peers(name):
        return net.status(name).get("peers", [])

    def made_up(name):
        return [p for p in peers(name) if p["id"].startswith(("junk-", "burst-"))]

    try:
        vport, hport = free_port(), free_port()
        victim = net.start("victim", vport, "--new-device")
        # Distinct addresses nobody listens on: loopback hosts (127.0.0.0/8) at a
        # port we took and let go.
        dead = free_port()
        with HostilePeer("127.0.0.1", vport, net.pki, "mallory") as m:
            for r in range(5):
                m.send(peer_exchange([(f"junk-{r}-{i}", f"127.{r + 1}.0.{i + 1}:{dead}")
                                      for i in range(64)]))
            for r in range(40):
                m.send(peer_exchange([(f"burst-{r}", f"127.9.0.{r + 1}:{dead}")]))
            time.sleep(1.5)
            junk = made_up("victim")
            check(len(junk) <= 8, f"{len(junk)} made-up peers in the victim's table (at most 8)")
            check(any(p["id"] == "mallory" and p["state"] == "active" for p in peers("victim")),
                  "mallory itself stays connected (its exchanges are ignored, not fatal)")

            net.start("honest", hport, "--peer", f"127.0.0.1:{vport}", "--new-device")
            ok = wait_for(lambda: any(p["id"] == "honest" and p["state"] == "active"
                                      for p in peers("victim")), 20)
            check(ok, "an honest node that joins after the flood is accepted")
            net.cli("honest", "append", "honest", "note", "1")
            ok = wait_for(lambda: any(d["device"] == "honest" and d["last"] == 1
                                      for d in net.status("victim").get("devices", [])), 20)
            check(ok, "and replicates to the victim")
            rss = rss_mb(victim.pid)
            check(rss < RSS_BOUND_MB, f"victim RSS {rss:.0f} MiB (bound {RSS_BOUND_MB})")

        log = net.log("victim")
        check("peer mallory: peer exchange:" in log and "ignored (at most 8" in log,
              "the log names mallory and the per-peer limit")
        check("peer mallory: peer exchanges beyond" in log,
              "the log names mallory and the rate limit")

        victim.send_signal(signal.SIGTERM)
        victim.wait(timeout=20)
        net.start("victim", vport)
        time.sleep(2)
        junk = made_up("victim")
        check(not junk, f"after a restart {len(junk)} made-up peers are left (none saved)")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
