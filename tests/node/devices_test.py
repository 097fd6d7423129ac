#!/usr/bin/env python3
"""Many devices per node (issue 15, item 5), with real processes: certs/
make-devices.sh mints 5,200 device identities; `cairnd --devices DIR` is their
source; events appended to some of them reach a second node, verified. The
catalogue summary (item 3): the new node asks for the buckets of the two
streams that hold events (the 5,198 empty ones add nothing to the sums); once it
agrees and comes back, a summary each way is all the catalogue costs, and an
append to a stream that was empty still arrives. Bad input: an empty directory,
and a certificate whose key is another's, stop the node at start with a message
that names the problem.

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
        # b sends a summary however few devices it has (--summary-min-devices 0).
        bflags = ["--new-device", "--peer-exchange", "off", "--summary-min-devices", "0",
                  "--peer", f"127.0.0.1:{aport}"]
        for dev, n in (("dev-00000", 3), (last, 2)):
            lines = "".join(json.dumps({"type": "note", "payload": {"i": i}}) + "\n"
                            for i in range(n))
            r = net.cli("a", "append", dev, "--stdin", input=lines)
            check(r.returncode == 0, f"a appends {n} events to {dev} ({r.stderr.strip()})")
        net.start("b", bport, *bflags)  # after the appends: its first summary names them
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
        cat = net.status("b").get("catalogue", {})
        check(cat.get("summaries_received") == 1 and 1 <= cat.get("buckets_asked", 0) <= 2 and
              cat.get("buckets_agreed", 0) >= 126 and cat.get("entries_received", N) < 200,
              f"new, b got a's summary and asked for the buckets of the two streams: {cat}")

        # b agrees with a, stops and comes back: a summary each way, nothing asked.
        def held(x):
            return {d["device"]: d.get("last", 0) for d in net.status(x).get("devices", [])
                    if d.get("last", 0) > 0}
        check(wait_for(lambda: held("b") == held("a"), 30),
              "b holds every stream of a's that holds events, at a's heads")
        bproc = net.procs[-1]
        bproc.terminate()
        bproc.wait()
        a_before = net.status("a").get("catalogue", {})
        net.start("b", bport, *bflags)
        check(wait_for(lambda: net.status("b").get("catalogue", {}).get(
            "summaries_received") == 1, 30), "back, b got a's summary")
        cat = net.status("b").get("catalogue", {})
        check(cat.get("buckets_asked") == 0 and cat.get("buckets_agreed") == 128 and
              cat.get("entries_received") == 1 and cat.get("bytes_received", 1 << 20) < 2048,
              f"it agreed in every bucket; one entry (a's own), {cat.get('bytes_received')} "
              f"bytes: {cat}")
        a_after = net.status("a").get("catalogue", {})
        check(a_after.get("summaries_received", 0) == a_before.get("summaries_received", 0) + 1
              and a_after.get("buckets_asked") == a_before.get("buckets_asked") and
              a_after.get("entries_received") == a_before.get("entries_received") + 1,
              f"a got b's summary (and b's own entry) and asked for nothing: {a_before} -> "
              f"{a_after}")
        r = net.cli("a", "append", "dev-00001", "note", "1")
        check(r.returncode == 0, "a appends to dev-00001, empty until now")
        check(wait_for(lambda: {d["device"]: d.get("last") for d in net.status("b").get(
            "devices", [])}.get("dev-00001") == 1, 30), "and b receives it")

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
