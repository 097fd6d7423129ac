#!/usr/bin/env python3
"""Many devices per node (issue 15, item 5), with real processes: certs/
make-devices.sh mints 5,200 device identities; `cairnd --devices DIR` is their
source; events appended to some of them reach a second node, verified. Bad
input: an empty directory, and a certificate whose key is another's, stop the
node at start with a message that names the problem.

    devices_test.py CAIRND CAIRN CERTS_DIR
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hostile"))
from peer import Network, free_port, wait_for  # noqa: E402

N = 5200  # more than one status reply holds (5,000 devices each)


def main():
    cairnd, cairn, certs = sys.argv[1:4]
    net = Network(cairnd, cairn, certs, ["a", "b"], "cairn-devices-")
    check = net.check
    try:
        devices = os.path.join(net.work, "devices")
        os.mkdir(devices)
        for f in ("ca.crt", "ca.key"):
            shutil.copy(os.path.join(net.pki, f), devices)
        r = subprocess.run([os.path.join(certs, "make-devices.sh"), devices, str(N)],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"make-devices.sh made {N}: {r.stdout.strip()} {r.stderr.strip()}")
        os.remove(os.path.join(devices, "ca.key"))  # a node needs no CA key
        last = f"dev-{N - 1:05d}"
        v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(net.pki, "ca.crt"),
                            os.path.join(devices, last + ".crt")], capture_output=True)
        check(v.returncode == 0, f"{last}.crt verifies against the network CA")

        aport, bport = free_port(), free_port()
        # Loading 5,200 device certificates takes a sanitized build a while.
        net.start("a", aport, "--new-device", "--peer-exchange", "off", "--devices", devices,
                  wait=120)
        net.start("b", bport, "--new-device", "--peer-exchange", "off",
                  "--peer", f"127.0.0.1:{aport}")
        for dev, n in (("dev-00000", 3), (last, 2)):
            lines = "".join(json.dumps({"type": "note", "payload": {"i": i}}) + "\n"
                            for i in range(n))
            r = net.cli("a", "append", dev, "--stdin", input=lines)
            check(r.returncode == 0, f"a appends {n} events to {dev} ({r.stderr.strip()})")
        src = {d["device"]: d for d in net.status("a").get("devices", [])}
        check(len(src) == N + 1, f"a's status lists its {N} devices and its own ({len(src)}; "
              "in parts of 5,000, joined by the CLI)")
        check(src.get("dev-00000", {}).get("source") and src.get(last, {}).get("source"),
              "a is the source of the devices in the directory")

        def arrived():
            held = {d["device"]: d.get("last") for d in net.status("b").get("devices", [])}
            return held.get("dev-00000") == 3 and held.get(last) == 2

        check(wait_for(arrived, 30), "b received both streams")
        r = net.cli("b", "verify", last)
        check(r.returncode == 0, f"b's copy of {last} verifies: {r.stdout.strip()}")

        # Bad input stops the node at start, with a message that names it.
        empty = os.path.join(net.work, "empty")
        os.mkdir(empty)
        def start_with(directory):
            return net.run_once("a", "--devices", directory, data="c")

        bad = start_with(empty)
        check(bad.returncode != 0 and "no NAME.crt with its NAME.key" in bad.stderr,
              f"an empty --devices directory is refused: {bad.stderr.strip()[:200]}")
        shutil.copy(os.path.join(devices, "dev-00001.key"), os.path.join(empty, "x.key"))
        shutil.copy(os.path.join(devices, "dev-00002.crt"), os.path.join(empty, "x.crt"))
        bad = start_with(empty)
        check(bad.returncode != 0 and "x." in bad.stderr,
              f"a certificate with another's key is refused: {bad.stderr.strip()[:200]}")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
