"""Real cairnd processes on loopback, and the clients that record a history.

Cluster: a network CA and node certificates made with certs/ (kept outside the data
directories, so a node that loses its data keeps its identity), nodes started and
killed on request, and every process it started stopped by Cluster.close(), also
after a failure. Writer, Tailer and Poller are threads that drive `cairn` and write
what they see into the History.
"""
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

from history import payload

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """preexec_fn: the child gets SIGKILL when the harness dies (say a ctest
    timeout), so no daemon or client outlives a run. Children are started and
    reaped by threads that outlive them, as PR_SET_PDEATHSIG requires."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bin_dir():
    d = os.environ.get("CAIRN_BIN_DIR")
    if d:
        return d
    for cand in ("build/test/bin", "build/node/bin", "build/demo/bin"):
        p = os.path.join(ROOT, cand)
        if os.path.exists(os.path.join(p, "cairnd")):
            return p
    raise SystemExit("faults: no cairnd found; set CAIRN_BIN_DIR")


class Node:
    """One cairnd: its data directory, listen port, peers and process."""

    def __init__(self, cluster, name, peers=(), advertise=None, env=None, extra=()):
        self.cluster = cluster
        self.name = name
        self.data = os.path.join(cluster.work, name)
        self.port = free_port()
        self.peers = list(peers)  # "HOST:PORT" strings, or callables returning one
        self.advertise = advertise
        self.env = dict(env or {})
        self.extra = list(extra)  # more cairnd flags
        self.proc = None
        self.started_once = False
        self.paused = False
        self.log_path = self.data + ".log"
        self.sanitizer_lines_seen = 0

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def args(self, new_device):
        c = self.cluster
        a = [c.cairnd, "--data", self.data, "--listen", self.address,
             "--ca", c.pki + "/ca.crt", "--cert", f"{c.pki}/{self.name}.crt",
             "--key", f"{c.pki}/{self.name}.key", "--peer-exchange", "off"]
        if c.dead_interval_ms:
            a += ["--dead-interval-ms", str(c.dead_interval_ms)]
        for p in self.peers:
            a += ["--peer", p() if callable(p) else p]
        if self.advertise:
            a += ["--advertise", self.advertise]
        if new_device:
            a.append("--new-device")
        return a + self.extra

    def start(self, new_device=None, wait=True, timeout=30, expect_exit=False):
        """Starts the daemon; `expect_exit`: it is meant to refuse to start, so its
        exit is no crash."""
        assert self.proc is None or self.proc.poll() is not None, self.name
        if new_device is None:
            new_device = not self.started_once
        os.makedirs(self.data, exist_ok=True)
        sock = os.path.join(self.data, "cairn.sock")
        if os.path.exists(sock):
            os.unlink(sock)  # a SIGKILLed daemon leaves it behind
        env = dict(os.environ)
        env.update(self.env)
        log = open(self.log_path, "a")
        proc = subprocess.Popen(self.args(new_device), stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, env=env,
                                preexec_fn=die_with_parent)
        log.close()
        # The flag lives on the process object, so the poller thread never pairs
        # a new process with the old one's flag (or the other way round).
        proc.expected_exit = expect_exit
        self.proc = proc
        self.paused = False
        self.started_once = True
        self.cluster.history.record("process", node=self.name, event="start",
                                    pid=self.proc.pid)
        if wait:
            self.wait_ready(timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ready(self):
        return self.alive() and os.path.exists(os.path.join(self.data, "cairn.sock"))

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} "
                                   f"at start-up; log {self.log_path}")
            if self.ready():
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; log {self.log_path}")

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill(self, sig=signal.SIGKILL, timeout=20):
        """Stops the daemon with `sig` (SIGKILL: a crash) and reaps it."""
        if self.proc is None:
            return None
        self.proc.expected_exit = True
        if self.paused:
            self.send_signal(signal.SIGCONT)
        self.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.cluster.history.record("process", node=self.name, event="exit",
                                    pid=self.proc.pid, rc=rc, expected=True)
        return rc

    def pause(self):
        self.paused = True
        self.send_signal(signal.SIGSTOP)

    def resume(self):
        self.send_signal(signal.SIGCONT)
        self.paused = False

    def cli(self, *args, timeout=10):
        """Runs `cairn --data DATA ARGS`; returns (rc, stdout) or (None, "") on timeout."""
        try:
            p = subprocess.run([self.cluster.cairn, "--data", self.data, *args],
                               capture_output=True, text=True, timeout=timeout)
            return p.returncode, p.stdout
        except subprocess.TimeoutExpired:
            return None, ""

    def status(self, timeout=5):
        rc, out = self.cli("status", "--json", timeout=timeout)
        if rc != 0:
            return None
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            return None

    def check_exit(self):
        """Records an exit nobody asked for (a crash of the daemon)."""
        proc = self.proc
        if proc is not None and not proc.expected_exit and proc.poll() is not None:
            proc.expected_exit = True
            self.cluster.history.record("process", node=self.name, event="exit",
                                        pid=proc.pid, rc=proc.returncode,
                                        expected=False)

    def scan_log(self):
        """Records sanitizer reports and fatal messages found in the daemon's log."""
        if not os.path.exists(self.log_path):
            return
        with open(self.log_path, errors="replace") as f:
            lines = f.read().splitlines()
        for line in lines[self.sanitizer_lines_seen:]:
            if ("ERROR: AddressSanitizer" in line or "runtime error:" in line
                    or "ERROR: LeakSanitizer" in line or "CHECK failed" in line):
                self.cluster.history.record("sanitizer", node=self.name, line=line[:400])
        self.sanitizer_lines_seen = len(lines)


class Writer(threading.Thread):
    """Appends unique payloads to a device through `cairn append --stdin --json`.

    One session is one CLI process; when the node dies the session ends, everything
    written to it and not acked is recorded as unknown, and a new session starts once
    the node is back. `rate` events/s, at most `inflight` unacked events."""

    def __init__(self, cluster, node, wid=None, rate=500, inflight=2000, batch=100):
        super().__init__(daemon=True, name=f"writer-{node.name}")
        self.c, self.node = cluster, node
        self.wid = wid or node.name
        self.device = node.name
        self.rate, self.inflight, self.batch = rate, inflight, batch
        self.next_n = 1
        self.session = 0
        self.stop_flag = threading.Event()
        self.pause_flag = threading.Event()
        self.acked = 0
        self.written = 0
        self.unknown = 0
        self.errors = []
        self.in_session = False
        self.unguarded_pid = None  # the node process whose guard was seen lifted

    def run(self):
        try:
            while not self.stop_flag.is_set():
                if self.pause_flag.is_set() or not self.node.ready() or self.node.paused:
                    time.sleep(0.02)
                    continue
                if not self.guard_lifted():
                    time.sleep(0.1)
                    continue
                self.in_session = True
                try:
                    self.one_session()
                finally:
                    self.in_session = False
        except Exception as e:  # recorded, re-raised by the scenario
            self.errors.append(repr(e))
            self.c.history.record("note", text=f"writer {self.wid} failed: {e!r}")

    def guard_lifted(self):
        """After a (re)start the node refuses appends to its own device until its
        restore guard lifts; a writer waits for that instead of being refused."""
        pid = self.node.proc.pid if self.node.proc else None
        if pid == self.unguarded_pid:
            return True
        st = self.node.status()
        if st is None:
            return False
        for d in st.get("devices", []):
            if d.get("device") == self.device and d.get("guard"):
                return False
        self.unguarded_pid = pid
        return True

    def one_session(self):
        self.session += 1
        s = self.session
        h = self.c.history
        p = subprocess.Popen([self.c.cairn, "--data", self.node.data, "append", self.device,
                              "--stdin", "--json", "--batch", str(self.batch)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, bufsize=1,
                             preexec_fn=die_with_parent)
        state = {"acked_n": self.next_n, "first_n": self.next_n, "written_to": self.next_n - 1}
        lock = threading.Lock()

        def read_acks():
            for line in p.stdout:
                try:
                    a = json.loads(line)
                except json.JSONDecodeError:
                    h.record("note", text=f"writer {self.wid}: bad ack line {line!r}")
                    continue
                k = a["last"] - a["first"] + 1
                with lock:
                    n0 = state["acked_n"]
                    state["acked_n"] += k
                    self.acked += k
                h.record("ack", w=self.wid, device=a["device"], session=s,
                         first=a["first"], last=a["last"], n0=n0, n1=n0 + k - 1)

        reader = threading.Thread(target=read_acks, daemon=True)
        reader.start()
        period = 0.02
        per_tick = max(1, int(self.rate * period))
        alive = True
        while alive and not self.stop_flag.is_set() and not self.pause_flag.is_set():
            with lock:
                backlog = state["written_to"] - state["acked_n"] + 1
            if backlog + per_tick <= self.inflight and p.poll() is None:
                n0 = self.next_n
                lines = "".join(json.dumps({"type": "fault.test",
                                            "payload": payload(self.wid, n)}) + "\n"
                                for n in range(n0, n0 + per_tick))
                h.record("write", w=self.wid, device=self.device, session=s,
                         n0=n0, n1=n0 + per_tick - 1)
                self.next_n += per_tick
                state["written_to"] = self.next_n - 1
                self.written += per_tick
                try:
                    p.stdin.write(lines)
                    p.stdin.flush()
                except (BrokenPipeError, OSError):
                    alive = False
            if p.poll() is not None:
                alive = False
            time.sleep(period)
        try:
            p.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        reader.join(timeout=10)
        err = p.stderr.read().strip()
        p.stderr.close()
        with lock:
            lo, hi = state["acked_n"], state["written_to"]
        unknown = [[lo, hi]] if hi >= lo else []
        self.unknown += max(0, hi - lo + 1)
        h.record("session_end", w=self.wid, device=self.device, session=s, rc=rc,
                 unknown=unknown, stderr=err[-300:])
        if f"append to {self.device} refused:" in err:
            # The CLI goes on printing the acks of batches sent after the refused
            # one, so acks can no longer be matched to payloads by counting.
            h.record("finding", what="append_refused", w=self.wid, device=self.device,
                     session=s, stderr=err[-300:])


class Tailer(threading.Thread):
    """Follows a device at a node with `cairn tail --follow --json`, resuming after
    the last delivered seq whenever the tail process ends (the node died)."""

    count = 0

    def __init__(self, cluster, node, device):
        super().__init__(daemon=True, name=f"tail-{node.name}-{device}")
        self.c, self.node, self.device = cluster, node, device
        self.next_from = 1
        self.stop_flag = threading.Event()
        self.proc = None
        self.delivered = 0

    def run(self):
        h = self.c.history
        while not self.stop_flag.is_set():
            if not self.node.ready() or self.node.paused:
                time.sleep(0.05)
                continue
            Tailer.count += 1
            tid = f"{self.node.name}/{self.device}/{Tailer.count}"
            self.proc = subprocess.Popen(
                [self.c.cairn, "--data", self.node.data, "tail", self.device, "--from",
                 str(self.next_from), "--follow", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                preexec_fn=die_with_parent)
            h.record("tail_start", tail=tid, node=self.node.name, device=self.device,
                     **{"from": self.next_from})
            for line in self.proc.stdout:
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:
                    h.record("note", text=f"tail {tid}: bad line {line[:200]!r}")
                    continue
                if "truncated" in e:
                    # Events the tail asked for were deleted by retention: no
                    # scenario sets a limit, so this is a finding. The tail exits 3;
                    # the next one starts after the snapshot that stands for them.
                    h.record("finding", what="tail_truncated", tail=tid,
                             node=self.node.name, device=self.device,
                             truncated=e["truncated"], snapshot=e["snapshot"])
                    self.next_from = e["snapshot"] + 1
                    continue
                if "snapshot" in e:
                    h.record("snapshot", tail=tid, node=self.node.name,
                             device=self.device, seq=e["snapshot"])
                    self.next_from = e["snapshot"] + 1
                    continue
                h.record("deliver", tail=tid, node=self.node.name, device=self.device,
                         seq=e["seq"], time_us=e["time_us"], type=e["type"],
                         payload=e["payload"])
                self.next_from = e["seq"] + 1
                self.delivered += 1
            rc = self.proc.wait()
            h.record("tail_end", tail=tid, node=self.node.name, rc=rc)
            time.sleep(0.05)

    def stop(self):
        self.stop_flag.set()
        p = self.proc
        if p is not None and p.poll() is None:
            p.terminate()
        self.join(timeout=15)


class Poller(threading.Thread):
    """Records every node's heads from `cairn status --json` every `period` s."""

    def __init__(self, cluster, period=0.5):
        super().__init__(daemon=True, name="poller")
        self.c, self.period = cluster, period
        self.stop_flag = threading.Event()

    def run(self):
        while not self.stop_flag.wait(self.period):
            for n in list(self.c.nodes.values()):
                n.check_exit()
                if n.ready() and not n.paused:
                    self.c.poll_heads(n, timeout=2)

    def stop(self):
        self.stop_flag.set()
        self.join(timeout=15)


class Cluster:
    def __init__(self, work, history, names, dead_interval_ms=None):
        self.work = work
        self.dead_interval_ms = dead_interval_ms  # None: cairnd's default
        self.history = history
        bd = bin_dir()
        self.cairnd = os.path.join(bd, "cairnd")
        self.cairn = os.path.join(bd, "cairn")
        self.pki = os.path.join(work, "pki")
        os.makedirs(self.pki, exist_ok=True)
        certs = os.path.join(ROOT, "certs")
        run = lambda *a: subprocess.run(a, check=True, capture_output=True)
        run(os.path.join(certs, "make-ca.sh"), self.pki)
        for n in names:
            run(os.path.join(certs, "make-node.sh"), self.pki, n)
        self.nodes = {}
        self.writers, self.tailers = [], []
        self.poller = None
        self.proxies = []

    def add(self, name, **kw):
        n = Node(self, name, **kw)
        self.nodes[name] = n
        return n

    def poll_heads(self, node, timeout=5):
        s = node.status(timeout=timeout)
        if s is None:
            return None
        heads = {d["device"]: d["last"] for d in s["devices"]}
        self.history.record("heads", node=node.name, heads=heads, forks=s["forks"],
                            peers={p["id"]: p["state"] for p in s["peers"]})
        return s

    def writer(self, node, **kw):
        w = Writer(self, node, **kw)
        self.writers.append(w)
        w.start()
        return w

    def tail(self, node, device):
        t = Tailer(self, node, device)
        self.tailers.append(t)
        t.start()
        return t

    def start_poller(self, period=0.5):
        self.poller = Poller(self, period)
        self.poller.start()

    def stop_writers(self):
        for w in self.writers:
            w.stop_flag.set()
        for w in self.writers:
            w.join(timeout=60)

    def wait_converged(self, devices, timeout):
        """Polls every node until all hold the same last seq of every device, that
        is the source's. Returns the seconds it took, or None at the timeout."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            lasts = {}
            ok = True
            for n in self.nodes.values():
                s = self.poll_heads(n)
                if s is None:
                    ok = False
                    break
                heads = {d["device"]: d["last"] for d in s["devices"]}
                for d in devices:
                    lasts.setdefault(d, set()).add(heads.get(d, 0))
            if ok and all(len(v) == 1 and 0 not in v for v in lasts.values()):
                took = time.monotonic() - t0
                self.history.record("converged", seconds=round(took, 3),
                                    lasts={d: v.pop() for d, v in lasts.items()})
                return took
            time.sleep(0.2)
        self.history.record("note", text=f"not converged within {timeout}s")
        return None

    def dump(self, devices):
        """Every replica of every device, read from seq 1 without --follow (what
        retention deleted comes as the snapshot that stands for it)."""
        for n in self.nodes.values():
            for d in devices:
                self.dump_one(n, d)

    def dump_one(self, node, device):
        p = subprocess.Popen([self.cairn, "--data", node.data, "tail", device, "--json",
                              "--allow-gaps"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=die_with_parent)
        count = 0
        for line in p.stdout:
            e = json.loads(line)
            if "truncated" in e:
                continue  # the snapshot line that follows is the dump's base
            if "snapshot" in e:
                self.history.record("snapshot", tail=None, node=node.name, device=device,
                                    seq=e["snapshot"])
                continue
            self.history.record("dump_event", node=node.name, device=device, seq=e["seq"],
                                time_us=e["time_us"], type=e["type"], payload=e["payload"])
            count += 1
        rc = p.wait()
        err = p.stderr.read()
        p.stderr.close()
        self.history.record("dump_end", node=node.name, device=device, rc=rc, count=count,
                            stderr=err[-300:])

    def close(self):
        """Stops every client and daemon this cluster started; safe to call twice."""
        for w in self.writers:
            w.stop_flag.set()
        for t in self.tailers:
            t.stop()
        if self.poller:
            self.poller.stop()
        for w in self.writers:
            w.join(timeout=40)
        for px in self.proxies:
            px.close()
        for n in self.nodes.values():
            if n.alive():
                n.kill(signal.SIGTERM, timeout=20)
            n.scan_log()


def copy_dir(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("cairn.sock", "LOCK"))
