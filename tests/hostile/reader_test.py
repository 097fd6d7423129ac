#!/usr/bin/env python3
"""The reader role (issue 14, item 6), end to end with certs/make-reader.sh and
real cairnd processes.

A reader certificate is a TLS client only. `cairn tail --peer` reads with it the
devices its certificate names (here: device a, not b); a reader with no names reads
every device. A reader that says hello as a node is refused, and the log says so;
cairnd will not run with a reader certificate as its own.

    reader_test.py CAIRND CAIRN CERTS_DIR
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer import HostilePeer, Network, free_port, wait_for  # noqa: E402


def main():
    cairnd, cairn, certs = sys.argv[1:4]
    net = Network(cairnd, cairn, certs, ["a", "b"], "cairn-reader-")
    check, pki = net.check, net.pki
    for name, globs in (("dash", ["a"]), ("everything", [])):
        subprocess.run([os.path.join(certs, "make-reader.sh"), pki, name, *globs], check=True,
                       capture_output=True)

    def last(name, dev):
        d = next((d for d in net.status(name).get("devices", []) if d["device"] == dev), {})
        return d.get("last", 0)

    def append(name, n):
        lines = "".join(json.dumps({"type": "note", "payload": {"i": i}}) + "\n"
                        for i in range(n))
        net.cli(name, "append", name, "--stdin", input=lines)

    def tail(reader, device):
        return subprocess.run(
            [cairn, "tail", device, "--peer", f"127.0.0.1:{aport}", "--ca", f"{pki}/ca.crt",
             "--cert", f"{pki}/{reader}.crt", "--key", f"{pki}/{reader}.key"],
            capture_output=True, text=True, timeout=30)

    honest = ["--new-device", "--peer-exchange", "off"]
    try:
        aport, bport = free_port(), free_port()
        net.start("a", aport, *honest)
        net.start("b", bport, *honest, "--peer", f"127.0.0.1:{aport}")
        append("a", 3)
        append("b", 2)
        check(wait_for(lambda: last("a", "b") == 2, 20), "a holds b's 2 events")

        r = tail("dash", "a")
        lines = [x for x in r.stdout.splitlines() if x.strip()]
        check(r.returncode == 0 and len(lines) == 3,
              f"dash (reader of a) tails a: exit {r.returncode}, {len(lines)} of 3 events "
              f"{r.stderr.strip()}")
        r = tail("dash", "b")
        check(r.returncode != 0 and r.stdout.strip() == "",
              f"dash cannot read b: exit {r.returncode}: {r.stderr.strip()}")
        r = tail("everything", "b")
        lines = [x for x in r.stdout.splitlines() if x.strip()]
        check(r.returncode == 0 and len(lines) == 2,
              f"a reader with no names reads b: exit {r.returncode}, {len(lines)} of 2")

        try:
            with HostilePeer("127.0.0.1", aport, pki, "dash", timeout=5) as m:
                closed = wait_for(lambda: m.closed, 5)
        except RuntimeError:
            closed = True
        check(closed, "a reader that says hello as a node is closed")
        check(wait_for(lambda: "a reader certificate said hello as a node" in net.log("a"),
                       5), "the log names it and why")
        check(not any(p.get("id") == "dash" for p in net.status("a").get("peers", [])),
              "the reader never became a peer")

        log = open(net.data("r") + ".log", "w")
        p = subprocess.run([cairnd, "--data", net.data("r"), "--listen",
                            f"127.0.0.1:{free_port()}", "--ca", f"{pki}/ca.crt", "--cert",
                            f"{pki}/dash.crt", "--key", f"{pki}/dash.key"],
                           stdout=log, stderr=subprocess.STDOUT, timeout=30)
        text = open(net.data("r") + ".log").read()
        check(p.returncode != 0 and "not usable for TLS client and server" in text,
              f"cairnd refuses to run as a node with a reader certificate: exit "
              f"{p.returncode}")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
