#!/usr/bin/env python3
"""Many devices (issue 15): N real cairnd processes on loopback, each told only
of n0; n0 is the source of DEVICES devices (certs/make-devices.sh, `cairnd
--devices`) and appends one event to each. Measures, per run: the time until
every node holds every device (`cairn status`, which comes in parts of 5,000
devices), the catalogue and stream traffic all nodes sent per device, the time
one `cairn status --json` of all devices takes, the CPU of the mesh while idle
and its messages per node per second, and RSS. A second run can follow only a
tenth of the devices at every node but n0 (`--follow` globs), to show what
interest saves. Against a Release build; not part of bin/test.

    devices.py CAIRND CAIRN CERTS_DIR [--nodes 10] [--devices 10000] [--idle 20]
               [--follow-tenth] [--summary-min-devices N]

Then n1 stops and comes back (`rejoin`): what its first catalogue exchanges with
a mesh it agrees with cost (summaries, buckets asked for, bytes).
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "hostile"))
from peer import Network, rss_mb, wait_for  # noqa: E402
from scale import cpu_seconds, listen_ports, sent  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cairnd")
    ap.add_argument("cairn")
    ap.add_argument("certs")
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--idle", type=float, default=20)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--follow-tenth", action="store_true",
                    help="nodes but n0 follow dev-*0 only (a tenth of the devices)")
    ap.add_argument("--summary-min-devices", type=int, default=None,
                    help="passed to every cairnd (a large number: whole catalogues only)")
    args = ap.parse_args()
    n, count = args.nodes, args.devices
    names = [f"n{i}" for i in range(n)]
    net = Network(args.cairnd, args.cairn, args.certs, names, "cairn-devices-bench-")
    row = {"nodes": n, "devices": count, "follow": "dev-*0" if args.follow_tenth else "*"}
    try:
        devdir = os.path.join(net.work, "devices")
        os.mkdir(devdir)
        for f in ("ca.crt", "ca.key"):
            shutil.copy(os.path.join(net.pki, f), devdir)
        t = time.monotonic()
        subprocess.run([os.path.join(args.certs, "make-devices.sh"), devdir, str(count)],
                       check=True, capture_output=True)
        row["make_devices_s"] = round(time.monotonic() - t, 1)
        devices = sorted(f[:-4] for f in os.listdir(devdir)
                         if f.endswith(".crt") and f != "ca.crt")
        ports = dict(zip(names, listen_ports(n)))
        extra = ["--new-device", "--log-level", "warn"]
        if args.summary_min_devices is not None:
            extra += ["--summary-min-devices", str(args.summary_min_devices)]
            row["summary_min_devices"] = args.summary_min_devices
        procs = {}
        t = time.monotonic()
        procs["n0"] = net.start("n0", ports["n0"], *extra, "--devices", devdir, wait=300)
        row["start_n0_s"] = round(time.monotonic() - t, 1)
        follow = ["--follow", "dev-*0"] if args.follow_tenth else []
        for name in names[1:]:
            procs[name] = net.start(name, ports[name], *extra, *follow,
                                    "--peer", f"127.0.0.1:{ports['n0']}")
        time.sleep(3)

        sent0 = sent(net, names)
        t0 = time.monotonic()

        def append(dev):
            return subprocess.run([args.cairn, "--data", net.data("n0"), "append", dev,
                                   "note", "1"], capture_output=True).returncode

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(append, devices))
        if any(codes):
            raise RuntimeError(f"{sum(1 for c in codes if c)} appends failed")
        row["append_s"] = round(time.monotonic() - t0, 1)
        wanted = {name: ([d for d in devices if d.endswith("0")] if args.follow_tenth and
                         name != "n0" else devices) for name in names}
        behind = set(names)

        def converged():
            for name in sorted(behind):
                held = {d["device"]: d.get("last", 0)
                        for d in net.status(name).get("devices", [])}
                if all(held.get(d, 0) >= 1 for d in wanted[name]):
                    behind.discard(name)
            return not behind

        ok = wait_for(converged, args.timeout, step=1)
        row["converge_s"] = round(time.monotonic() - t0, 1) if ok else None
        row["behind"] = len(behind)
        sent1 = sent(net, names)
        row["msgs_per_device"] = round((sent1[0] - sent0[0]) / count, 2)
        row["bytes_per_device"] = round((sent1[1] - sent0[1]) / count)
        held = [len(net.status(name).get("devices", [])) for name in names]
        row["stored_mean"] = round(sum(held) / n)
        t = time.monotonic()
        r = subprocess.run([args.cairn, "--data", net.data("n1"), "status", "--json"],
                           capture_output=True, text=True)
        row["status_s"] = round(time.monotonic() - t, 2)
        row["status_mib"] = round(len(r.stdout) / 2**20, 1)
        m0 = sent(net, names)
        before = sum(cpu_seconds(p.pid) for p in procs.values())
        time.sleep(args.idle)
        after = sum(cpu_seconds(p.pid) for p in procs.values())
        m1 = sent(net, names)
        row["idle_cores"] = round((after - before) / args.idle, 3)
        row["idle_msgs_node_s"] = round((m1[0] - m0[0]) / n / args.idle, 2)
        rss = [rss_mb(p.pid) for p in procs.values()]
        row["rss_n0_mib"] = round(rss[0], 1)
        row["rss_mean_mib"] = round(sum(rss) / n, 1)
        # n1, which agrees with the mesh, stops and comes back: what its first
        # catalogue exchanges cost (a summary per peer, the buckets that differ).
        procs["n1"].terminate()
        procs["n1"].wait()
        t = time.monotonic()
        procs["n1"] = net.start("n1", ports["n1"], *extra, *follow,
                                "--peer", f"127.0.0.1:{ports['n0']}")

        def active():
            return sum(1 for p in net.status("n1").get("peers", [])
                       if p.get("state") == "active")

        wait_for(lambda: active() >= min(n - 1, 8), 60, step=0.5)
        time.sleep(5)  # answers, if any, come after a round trip
        st = net.status("n1")
        cat = st.get("catalogue", {})
        peers = active()
        row["rejoin"] = {
            "active_peers": peers, "s": round(time.monotonic() - t, 1),
            "summaries": cat.get("summaries_received"),
            "buckets_agreed": cat.get("buckets_agreed"),
            "buckets_asked": cat.get("buckets_asked"),
            "entries_received": cat.get("entries_received"),
            "catalogue_bytes_received": cat.get("bytes_received"),
            "catalogue_bytes_sent": cat.get("bytes_sent"),
            "catalogue_bytes_per_peer": round(
                (cat.get("bytes_received", 0) + cat.get("bytes_sent", 0)) / max(peers, 1)),
        }
    finally:
        net.stop()
    print(json.dumps(row))


if __name__ == "__main__":
    main()
