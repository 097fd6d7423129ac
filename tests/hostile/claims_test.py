#!/usr/bin/env python3
"""A false claim against a real cairnd (issue 14, item 1).

Mallory holds a valid node certificate of the network. Its catalogue says it is
the source of device `src` and holds 2^62 events of it, and it sends nothing when
subscribed to. The victim knows src's events only through mallory and an honest
relay h (peer exchange off, so it never meets src itself). Before claims were
bounded, the victim followed src through mallory, a "source", for as long as
mallory stayed connected and received nothing. Now the source flag is believed
only from the node named src, and a followed peer that claims more than it sends
is passed over after 10 s: the victim must hold every event of src through h
within 30 s, mallory must stay connected (it may only be slow), the log must name
mallory and its claim, and the victim's memory must stay under a bound.

    claims_test.py CAIRND CAIRN CERTS_DIR
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer import (CATALOGUE, HostilePeer, Network, envelope, field_bytes, field_uint,  # noqa: E402
                  free_port, rss_mb, wait_for)

EVENTS = 20
RSS_BOUND_MB = 400  # sanitized build


def false_catalogue(device):
    entry = field_bytes(1, device) + field_uint(2, 1) + field_uint(3, 1 << 62) + field_uint(5, 1)
    return envelope(CATALOGUE, field_uint(1, 1) + field_bytes(2, entry))


def main():
    net = Network(*sys.argv[1:4], ["src", "h", "victim", "mallory"], "cairn-claims-")
    check = net.check
    honest = ["--new-device", "--peer-exchange", "off"]

    def device(name, dev):
        return next((d for d in net.status(name).get("devices", []) if d["device"] == dev), {})

    try:
        sport, hport, vport = free_port(), free_port(), free_port()
        net.start("src", sport, *honest)
        lines = "".join(json.dumps({"type": "note", "payload": i}) + "\n" for i in range(EVENTS))
        net.cli("src", "append", "src", "--stdin", input=lines)
        victim = net.start("victim", vport, *honest)
        with HostilePeer("127.0.0.1", vport, net.pki, "mallory") as m:
            m.send(false_catalogue("src"))
            time.sleep(3)  # the victim subscribes to src through mallory, who sends nothing
            check(device("victim", "src").get("last", 0) == 0,
                  "nothing of src arrives through mallory")
            # h holds src's events and dials the victim.
            net.start("h", hport, *honest, "--peer", f"127.0.0.1:{sport}",
                      "--peer", f"127.0.0.1:{vport}")
            t0 = time.monotonic()
            ok = wait_for(lambda: device("victim", "src").get("last") == EVENTS, 30)
            check(ok, f"the victim holds {device('victim', 'src').get('last', 0)} of src's "
                      f"{EVENTS} events {time.monotonic() - t0:.1f} s after h came (at most 30 s)")
            via = device("victim", "src").get("via")
            check(via == "h", f"it follows src through {via} (h)")
            check(not m.closed, "mallory is passed over, not disconnected")
            rss = rss_mb(victim.pid)
            check(rss < RSS_BOUND_MB, f"victim RSS {rss:.0f} MiB (bound {RSS_BOUND_MB})")
        check("peer mallory claims 'src' up to 4611686018427387904 but sent nothing"
              in net.log("victim"), "the log names mallory and its claim")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
