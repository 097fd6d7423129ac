#!/usr/bin/env python3
"""Scale of a mesh of real cairnd processes on loopback (issue 15): for each
size, N nodes, each told only of n0 (peer exchange on), each the source of its
own device; every node appends EVENTS events at once, and the mesh must hold all
of them everywhere. Prints, per size: the time to converge, the messages and bytes all
nodes sent while the burst spread per event appended (from their own counters,
`cairn status`), active connections per node, known peers kept as spares, the
CPU of the whole mesh while idle, and RSS per node. Run it against a Release build; not part of bin/test.

    scale.py CAIRND CAIRN CERTS_DIR [--nodes 10,25,50] [--events 100]
             [--target-peers T] [--idle S] [--timeout S] [--perf FILE]

--target-peers 0 is the full mesh (every node dials every peer it learns of);
the default is cairnd's (8).
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "hostile"))
from peer import Network, rss_mb, wait_for  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def sent(net, names):
    """Messages and bytes all of `names` sent so far (their `cairn status`)."""
    msgs = byts = 0
    for name in names:
        t = net.status(name).get("traffic", {})
        msgs += t.get("messages_sent", 0)
        byts += t.get("bytes_sent", 0)
    return msgs, byts


def listen_ports(n):
    """n free ports below the kernel's ephemeral range: a port picked inside it
    may be taken as the source port of one of the mesh's own connections before
    its node listens."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    out, port = [], max(1024, low - 12000 + random.randrange(8000))
    while len(out) < n and port < low:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            out.append(port)
        except OSError:
            pass
        finally:
            s.close()
        port += 1
    return out


def run(args, n):
    names = [f"n{i}" for i in range(n)]
    net = Network(args.cairnd, args.cairn, args.certs, names, "cairn-scale-")
    row = {"nodes": n}
    try:
        ports = dict(zip(names, listen_ports(n)))
        extra = ["--new-device", "--log-level", "warn"]
        if args.target_peers is not None:
            extra += ["--target-peers", str(args.target_peers)]
        procs = {}
        for name in names:
            seed = [] if name == "n0" else ["--peer", f"127.0.0.1:{ports['n0']}"]
            procs[name] = net.start(name, ports[name], *extra, *seed)
        # Let discovery settle before the burst: the mesh as it stands.
        time.sleep(min(30, 2 + n / 5))
        payload = "".join(json.dumps({"type": "note", "payload": {"i": i}}) + "\n"
                          for i in range(args.events))

        sent0 = sent(net, names)
        t0 = time.monotonic()
        for name in names:
            r = net.cli(name, "append", name, "--stdin", input=payload)
            if r.returncode != 0:
                raise RuntimeError(f"append at {name}: {r.stderr}")
        appended = time.monotonic() - t0
        behind = set(names)

        def converged():
            for name in sorted(behind):
                st = net.status(name)
                held = {d["device"]: d.get("last", 0) for d in st.get("devices", [])}
                if all(held.get(d, 0) == args.events for d in names):
                    behind.discard(name)
            return not behind

        ok = wait_for(converged, args.timeout, step=0.5)
        row["converge_s"] = round(time.monotonic() - t0, 1) if ok else None
        row["append_s"] = round(appended, 1)
        row["behind"] = len(behind)
        # Every message any node sent while the burst spread (heartbeats and
        # probes of those seconds included), per event appended.
        sent1 = sent(net, names)
        appends = n * args.events
        row["msgs_per_append"] = round((sent1[0] - sent0[0]) / appends, 2)
        row["bytes_per_append"] = round((sent1[1] - sent0[1]) / appends)
        active, spares = [], 0
        for name in names:
            st = net.status(name)
            peers = st.get("peers", [])
            active.append(sum(1 for p in peers if p.get("state") == "active"))
            spares += sum(1 for p in peers if p.get("reason", "").startswith("spare"))
        row["conns_mean"] = round(sum(active) / n, 1)
        row["conns_max"] = max(active)
        row["spares"] = spares
        m0 = sent(net, names)
        before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        if args.perf:  # a profile of the whole idle mesh, for `perf report`
            subprocess.run(["perf", "record", "-F", "499", "-g", "-a", "-o", args.perf,
                            "--", "sleep", str(args.idle)], capture_output=True)
        else:
            time.sleep(args.idle)
        after = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        m1 = sent(net, names)
        row["idle_msgs_node_s"] = round((m1[0] - m0[0]) / n / args.idle, 2)
        row["idle_cores"] = round(sum(after[k] - before[k] for k in names) / args.idle, 3)
        # The seed every node was told of (at the cap at 100 nodes) apart.
        row["idle_n0_cores"] = round((after["n0"] - before["n0"]) / args.idle, 3)
        rss = [rss_mb(p.pid) for p in procs.values()]
        row["rss_mean_mib"] = round(sum(rss) / n, 1)
        row["rss_max_mib"] = round(max(rss), 1)
    finally:
        net.stop()
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cairnd")
    ap.add_argument("cairn")
    ap.add_argument("certs")
    ap.add_argument("--nodes", default="10,25,50")
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--target-peers", type=int, default=None)
    ap.add_argument("--idle", type=float, default=30)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--perf", default="", help="perf record the idle window into FILE")
    args = ap.parse_args()
    mesh = ("full mesh" if args.target_peers == 0 else
            f"target {args.target_peers if args.target_peers is not None else 'default'}")
    print(f"# {mesh}, {args.events} events per node, idle over {args.idle:.0f} s", flush=True)
    cols = ["nodes", "converge_s", "behind", "append_s", "msgs_per_append",
            "bytes_per_append", "conns_mean", "conns_max",
            "spares", "idle_cores", "idle_n0_cores", "idle_msgs_node_s", "rss_mean_mib",
            "rss_max_mib"]
    print(" ".join(f"{c:>12}" for c in cols), flush=True)
    for n in [int(x) for x in args.nodes.split(",")]:
        row = run(args, n)
        print(" ".join(f"{str(row.get(c)):>12}" for c in cols), flush=True)


if __name__ == "__main__":
    main()
