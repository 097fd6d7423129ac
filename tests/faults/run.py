"""Runs fault scenarios against real cairnd processes and checks their histories.

  tests/faults/run [--long] [--seed N] [--keep] [--out DIR] [--set NAME=VALUE]
                   [SCENARIO ...]

Without SCENARIO, runs every scenario. CAIRN_BIN_DIR names the folder of the
cairnd and cairn to test (default: the first of build/test/bin, build/node/bin,
build/demo/bin that holds them). Each scenario leaves its history, checker report
(text and JSON) and daemon logs in --out (default: a fresh folder under $TMPDIR,
removed after a passing run unless --keep). Exit status: 0 when every checked
history is clean, 1 on any violation or harness error.
"""
import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402
from cluster import Cluster  # noqa: E402
from history import History  # noqa: E402
from scenarios import FAKETIME_LIB, SCENARIOS  # noqa: E402

DEFAULT_DEAD_INTERVAL_MS = 30_000  # cairnd --dead-interval-ms default
CI_DEAD_INTERVAL_MS = 3_000


class Run:
    """What a scenario needs from the runner: a cluster with a history, the start
    of recording, and the common ending (heal, converge, dump)."""

    def __init__(self, name, work, seed, long, overrides=None):
        self.name, self.work, self.seed, self.long = name, work, seed, long
        self.overrides = dict(overrides or {})
        self.history = History(os.path.join(work, "history.jsonl"))
        self.c = None

    def cluster(self, names):
        self.c = Cluster(self.work, self.history, names,
                         dead_interval_ms=self.dead_interval_ms)
        return self.c

    def size(self, name, ci, long):
        """A scenario's size `name`: CI-sized, long, or as --set NAME=VALUE says."""
        if name in self.overrides:
            return type(ci)(self.overrides[name])
        return long if self.long else ci

    @property
    def dead_interval_ms(self):
        """CI-sized runs shorten cairnd's dead interval (30 s) so that a pause or a
        stall past it takes seconds; the long run keeps the default."""
        return None if self.long else CI_DEAD_INTERVAL_MS

    @property
    def dead_interval_s(self):
        return (self.dead_interval_ms or DEFAULT_DEAD_INTERVAL_MS) / 1000

    def begin(self, c, devices, params):
        c.history.record("meta", scenario=self.name, nodes=sorted(c.nodes),
                         devices=devices, seed=self.seed, long=self.long, params=params,
                         wall_start=time.time(), cairnd=c.cairnd)
        c.start_poller()

    def quiesce(self, c, w, devices, timeout=60):
        """Holds the writer and waits until every node holds every acked event."""
        w.pause_flag.set()
        deadline = time.monotonic() + timeout
        while w.in_session and time.monotonic() < deadline:
            time.sleep(0.05)
        if c.wait_converged(devices, timeout) is None:
            raise RuntimeError("nodes did not converge while the writer was held")

    def finish(self, c, devices, converge_s=60):
        c.history.record("note", text="faults over; stopping writers")
        c.stop_writers()
        for w in c.writers:
            if w.errors:
                raise RuntimeError(f"writer {w.wid}: {w.errors}")
        took = c.wait_converged(devices, converge_s)
        if took is not None:
            self.wait_tails(c)
        for t in c.tailers:
            t.stop()
        c.poller.stop()
        c.dump(devices)

    def wait_tails(self, c, timeout=20):
        """Every live tail must deliver up to the converged head."""
        lasts = {}
        for n in c.nodes.values():
            s = n.status()
            for d in (s or {}).get("devices", []):
                lasts[d["device"]] = max(lasts.get(d["device"], 0), d["last"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(t.next_from > lasts.get(t.device, 0) for t in c.tailers):
                return
            time.sleep(0.1)
        for t in c.tailers:
            if t.next_from <= lasts.get(t.device, 0):
                c.history.record("finding", what="tail_stalled", node=t.node.name,
                                 device=t.device, next_from=t.next_from,
                                 head=lasts[t.device])

    def faketime_env(self, path):
        """libfaketime reading its offset from `path`, the monotonic clock untouched.
        With an ASan build the sanitizer runtime must stay first: it is preloaded
        ahead of libfaketime."""
        preload = [FAKETIME_LIB]
        asan = asan_runtime(self.c.cairnd)
        if asan:
            preload.insert(0, asan)
        return {"LD_PRELOAD": " ".join(preload), "FAKETIME_TIMESTAMP_FILE": path,
                "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def asan_runtime(binary):
    """The path of the ASan runtime `binary` links, or None."""
    import subprocess
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "libasan" in line and "=>" in line:
            return line.split("=>")[1].split()[0]
    return None


# Real-process checks with a verdict of their own (no history to check): run as
# scripts with this build's cairnd and cairn, --long passed on.
# name -> (script or test binary, whether it takes the certs folder).
STANDALONE = {
    "big_snapshot": ("big_snapshot.py", True),       # issue 13, defect 3
    "fd_flood": ("../hostile/fd_flood_test.py", False),  # defect 6
    "deep_json": ("node_hostile_input_test", False),  # defect 1 (CAIRN_LONG=1)
}


def run_standalone(name, args):
    import subprocess
    from cluster import ROOT, bin_dir
    d = bin_dir()
    what, certs = STANDALONE[name]
    env = dict(os.environ)
    if what.endswith(".py"):
        cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), what),
               os.path.join(d, "cairnd"), os.path.join(d, "cairn")]
        if certs:
            cmd.append(os.path.join(ROOT, "certs"))
        if args.long:
            cmd.append("--long")
    else:  # a test binary of the same build (build/X/tests/node next to build/X/bin)
        cmd = [os.path.join(d, "..", "tests", "node", what)]
        if args.long:
            env["CAIRN_LONG"] = "1"
    print(f"faults: {name} ({'long' if args.long else 'CI-sized'})", flush=True)
    return subprocess.run(cmd, env=env).returncode == 0


def run_one(name, args, out_root):
    if name in STANDALONE:
        return run_standalone(name, args)
    work = os.path.join(out_root, name)
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1_000_000
    print(f"faults: {name} ({'long' if args.long else 'CI-sized'}, seed {seed}) in {work}",
          flush=True)
    t0 = time.monotonic()
    r = Run(name, work, seed, args.long, dict(kv.split("=", 1) for kv in args.set))
    error = None
    interrupted = False
    try:
        SCENARIOS[name](r, args.long)
    except (Exception, KeyboardInterrupt) as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        error = traceback.format_exc()
        r.history.record("note", text="harness error: " + error[-1500:])
    finally:
        if r.c is not None:
            r.c.close()
        r.history.close()
    rep = checker.check(checker.load(r.history.path))
    if error:
        rep.add("harness_error", detail=error.strip().splitlines()[-1])
    rep.figures["wall_s"] = round(time.monotonic() - t0, 1)
    rep.figures["seed"] = seed
    text = rep.text()
    with open(os.path.join(work, "report.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(work, "report.json"), "w") as f:
        json.dump(rep.to_json(), f, indent=1, sort_keys=True)
    print(text, flush=True)
    if error:
        print(error, file=sys.stderr)
    print(f"faults: {name} took {rep.figures['wall_s']} s; report in {work}/report.txt",
          flush=True)
    if interrupted:
        raise SystemExit(f"faults: interrupted; histories in {out_root}")
    return rep.ok()


def on_sigterm(signum, frame):
    """A SIGTERM (ctest's timeout, a Ctrl-C'd parent) unwinds like an error, so
    every scenario's cleanup runs."""
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    signal.signal(signal.SIGTERM, on_sigterm)
    ap = argparse.ArgumentParser(description="Cairn fault scenarios with a history checker")
    ap.add_argument("scenarios", nargs="*",
                    help=f"any of: {', '.join(list(SCENARIOS) + list(STANDALONE))}")
    ap.add_argument("--long", action="store_true", help="the long variant")
    ap.add_argument("--seed", type=int, help="seed of the fault schedule")
    ap.add_argument("--out", help="folder for histories, reports and logs")
    ap.add_argument("--keep", action="store_true", help="keep the folder after a pass")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a scenario size (e.g. kills=3)")
    args = ap.parse_args()
    known = list(SCENARIOS) + list(STANDALONE)
    names = args.scenarios or known
    for n in names:
        if n not in known:
            ap.error(f"unknown scenario '{n}' (known: {', '.join(known)})")
    out_root = args.out or tempfile.mkdtemp(prefix="cairn-faults-")
    os.makedirs(out_root, exist_ok=True)
    failed = [n for n in names if not run_one(n, args, out_root)]
    if failed:
        print(f"faults: FAILED: {', '.join(failed)}; histories in {out_root}")
        return 1
    print(f"faults: all passed: {', '.join(names)}")
    if not args.keep and not args.out:
        shutil.rmtree(out_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
