#!/usr/bin/env python3
"""Cairn, NATS JetStream and Redis Streams under the same workloads, side by side.

Called by tests/bench/peers/run after the build. Per run and per system, in this
order so that every pair of figures comes from the same run:
  append    N events of 100 B and M of 1 KiB into one stream, fast and durable,
            each on a fresh server;
  catch-up  a new subscriber reads the 100 B fast stream from the start;
  live      L events at R/s, append-to-delivery latency (Cairn one and two hops);
and for each workload, the CPU seconds and peak RSS of every server process.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import report
import servers

SYSTEMS = ("cairn", "jetstream", "redis")


def _load():
    """The 1, 5 and 15 minute load averages: the machine may be shared."""
    return [round(x, 2) for x in os.getloadavg()]


class Bench:
    def __init__(self, args):
        self.args = args
        self.bins = os.path.join(args.build, "bin")
        self.peers_bins = os.path.join(args.build, "tests", "bench", "peers")
        self.quick = args.quick
        self.n100 = 20_000 if args.quick else 1_000_000
        self.n1k = 5_000 if args.quick else 200_000
        self.live = 1_000 if args.quick else 10_000
        self.rate = 1_000
        self.workdir = None
        self.js_sync_always = False

    # ------------------------------------------------------------ helpers
    def client(self, system, *argv, timeout=900):
        name = {"cairn": "cairn_peer_bench", "jetstream": "nats_peer_bench",
                "redis": "redis_peer_bench"}[system]
        cmd = [os.path.join(self.peers_bins, name)] + [str(a) for a in argv]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def start_follower(self, system, *argv):
        """Starts a live subscriber; returns once it printed {"ready":true}."""
        name = {"cairn": "cairn_peer_bench", "jetstream": "nats_peer_bench",
                "redis": "redis_peer_bench"}[system]
        cmd = [os.path.join(self.peers_bins, name), "follow"] + [str(a) for a in argv]
        p = servers.track(subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True))
        line = p.stdout.readline()
        if '"ready"' not in line:
            p.kill()
            raise RuntimeError(f"{' '.join(cmd)} never got ready: {p.stderr.read()}")
        return p

    @staticmethod
    def finish_follower(p, timeout=300):
        out, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"follower failed: {err.strip()}")
        return json.loads(out.strip().splitlines()[-1])

    def fresh(self, tag):
        d = os.path.join(self.workdir, tag)
        os.makedirs(d)
        return d

    def server(self, system, tag, durable, **kw):
        d = self.fresh(tag)
        if system == "cairn":
            return servers.CairnNode(self.bins, d, "a", durable).wait_ready()
        if system == "jetstream":
            return servers.NatsServer(d, "js", durable, self.js_sync_always).wait_ready()
        return servers.RedisServer(d, "redis", durable).wait_ready()

    def append(self, system, srv, n, size):
        if system == "cairn":
            r = self.client("cairn", "append", "--data", srv.data, "--device", srv.device,
                            "--events", n, "--size", size)
        elif system == "jetstream":
            r = self.client("jetstream", "append", "--url", srv.url, "--events", n,
                            "--size", size)
        else:
            r = self.client("redis", "append", "--port", srv.port, "--events", n,
                            "--size", size)
        r["events_s"] = round(n / r["seconds"])
        r["mb_s"] = round(n * size / r["seconds"] / 1e6, 2)
        return r

    @staticmethod
    def measured(result, procs):
        result["servers"] = {p.name: p.usage() for p in procs}
        return result

    # ------------------------------------------------------------ workloads
    def append_case(self, system, run, size, n, durable, then_catchup):
        tag = f"r{run}-{system}-append{size}-{'durable' if durable else 'fast'}"
        srv = self.server(system, tag, durable)
        try:
            srv.mark()
            out = {"append": self.measured(self.append(system, srv, n, size), [srv])}
            if then_catchup:
                out["catchup"] = self.catchup(system, srv, n, tag)
            return out
        finally:
            srv.stop()

    def catchup(self, system, srv, n, tag):
        srv.mark()
        if system == "cairn":
            start = time.monotonic()
            sub = servers.CairnNode(self.bins, os.path.join(self.workdir, tag), "b", False,
                                    peers=[srv])
            try:
                r = self.client("cairn", "wait", "--data", sub.data, "--device", srv.device,
                                "--last", n)
                r["seconds"] = round(r.pop("done_mono_us") / 1e6 - start, 3)
                return self.measured(self.rates(r, n), [srv, sub])
            finally:
                sub.stop()
        if system == "jetstream":
            r = self.client("jetstream", "catchup", "--url", srv.url, "--events", n)
        else:
            r = self.client("redis", "catchup", "--port", srv.port, "--events", n)
        return self.measured(self.rates(r, n), [srv])

    @staticmethod
    def rates(r, n):
        r["events_s"] = round(n / r["seconds"])
        r["mb_s"] = round(n * 100 / r["seconds"] / 1e6, 2)
        return r

    def live_case(self, system, run):
        tag = f"r{run}-{system}-live"
        d = self.fresh(tag)
        if system == "cairn":
            return self.live_cairn(d)
        if system == "jetstream":
            srv = servers.NatsServer(d, "js", False, self.js_sync_always).wait_ready()
            follow = ["--url", srv.url]
        else:
            srv = servers.RedisServer(d, "redis", False).wait_ready()
            follow = ["--port", srv.port]
        try:
            f = self.start_follower(system, *follow, "--events", self.live)
            srv.mark()
            self.client(system, "publish", *follow, "--events", self.live, "--size", 100,
                        "--rate", self.rate)
            return self.measured({"one_hop": self.finish_follower(f)}, [srv])
        finally:
            srv.stop()

    def live_cairn(self, d):
        a = servers.CairnNode(self.bins, d, "a", False, exchange=False).wait_ready()
        b = servers.CairnNode(self.bins, d, "b", False, [a], exchange=False).wait_ready()
        c = servers.CairnNode(self.bins, d, "c", False, [b], exchange=False).wait_ready()
        nodes = [a, b, c]
        try:
            at_a = ["--data", a.data, "--device", a.device]
            self.client("cairn", "publish", *at_a, "--events", 1, "--size", 100, "--rate", 1)
            for n in (b, c):  # the line is up: A's device has reached C through B
                self.client("cairn", "wait", "--data", n.data, "--device", a.device,
                            "--last", 1, "--timeout-s", 60)
            f1, f2 = (self.start_follower("cairn", "--data", n.data, "--device", a.device,
                                          "--from", 2, "--events", self.live)
                      for n in (b, c))
            for n in nodes:
                n.mark()
            self.client("cairn", "publish", *at_a, "--events", self.live, "--size", 100,
                        "--rate", self.rate)
            out = {"one_hop": self.finish_follower(f1), "two_hops": self.finish_follower(f2)}
            return self.measured(out, nodes)
        finally:
            for n in reversed(nodes):
                n.stop()

    # ------------------------------------------------------------ driver
    def one_run(self, run):
        res = {s: {} for s in SYSTEMS}
        res["load"] = {"start": _load()}
        only = self.args.only
        for size, n in ((100, self.n100), (1024, self.n1k)) if only != "live" else ():
            for durable in (False, True):
                key = f"append_{size}_{'durable' if durable else 'fast'}"
                for s in SYSTEMS:
                    print(f"run {run}: {s} {key}", flush=True)
                    out = self.append_case(s, run, size, n, durable,
                                           then_catchup=(size == 100 and not durable))
                    res[s][key] = out["append"]
                    if "catchup" in out:
                        res[s]["catchup"] = out["catchup"]
        for s in SYSTEMS if only != "append" else ():
            print(f"run {run}: {s} live", flush=True)
            res[s]["live"] = self.live_case(s, run)
        res["load"]["end"] = _load()
        return res

    def main(self):
        self.workdir = tempfile.mkdtemp(prefix="cairn-peers-")
        self.js_sync_always = servers.nats_knows_sync_always(self.workdir)
        started = datetime.datetime.now(datetime.timezone.utc)
        runs = []
        try:
            for run in range(1, self.args.runs + 1):
                runs.append(self.one_run(run))
                shutil.rmtree(self.workdir, ignore_errors=True)
                os.makedirs(self.workdir)
        finally:
            servers.stop_all()
            shutil.rmtree(self.workdir, ignore_errors=True)
        sizes = {"n100": self.n100, "n1k": self.n1k, "live": self.live, "rate": self.rate}
        doc = report.document(self.args, runs, sizes, started, self.js_sync_always)
        out = self.args.out or os.path.join(self.args.build, "results")
        os.makedirs(out, exist_ok=True)
        stem = os.path.join(out, "peers-" + started.strftime("%Y%m%dT%H%M%SZ"))
        with open(stem + ".json", "w") as f:
            json.dump(doc, f, indent=1)
        with open(stem + ".md", "w") as f:
            f.write(report.markdown(doc))
        print(report.markdown(doc))
        print(f"results: {stem}.md {stem}.json")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", required=True, help="Release build dir with bin/cairnd")
    p.add_argument("--root", required=True, help="the Cairn source tree")
    p.add_argument("--quick", action="store_true", help="small counts, one run: a smoke run")
    p.add_argument("--runs", type=int, default=None, help="runs (default 3, --quick 1)")
    p.add_argument("--out", default=None, help="where to write (default BUILD/results)")
    p.add_argument("--only", choices=("all", "append", "live"), default="all",
                   help="one part: append (with the catch-up of its stream) or live")
    args = p.parse_args()
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1:
        p.error("--runs must be at least 1")

    def on_signal(signum, _frame):
        servers.stop_all()
        sys.exit(128 + signum)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    Bench(args).main()


if __name__ == "__main__":
    main()
