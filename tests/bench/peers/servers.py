"""Servers of the peer benchmark: cairnd, nats-server and redis-server processes
on loopback, each with its data in a directory of its own, stopped by PID.

Every server started here is recorded in STARTED, every long-lived client in
CLIENTS; stop_all(), which peers.py calls on exit and on SIGINT/SIGTERM, stops
them by PID, so none is left behind.
"""
import os
import signal
import socket
import subprocess
import time

STARTED = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Server:
    """One server process: start, resource marks, stop."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        STARTED.append(self)
        self.pid = self.proc.pid
        self.cpu_mark = 0.0

    def alive(self):
        return self.proc.poll() is None

    def _stat_cpu_s(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        return ticks / os.sysconf("SC_CLK_TCK")

    def mark(self):
        """Starts a workload: resets the peak RSS (VmHWM) and notes the CPU time."""
        with open(f"/proc/{self.pid}/clear_refs", "w") as f:
            f.write("5")
        self.cpu_mark = self._stat_cpu_s()

    def usage(self):
        """CPU seconds since mark() and the peak RSS in MB since then."""
        rss_kb = 0
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    rss_kb = int(line.split()[1])
        return {"cpu_s": round(self._stat_cpu_s() - self.cpu_mark, 3),
                "rss_mb": round(rss_kb / 1024, 1)}

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if self in STARTED:
            STARTED.remove(self)


CLIENTS = []  # long-lived client processes (live subscribers)


def track(popen):
    CLIENTS.append(popen)
    return popen


def stop_all():
    for p in CLIENTS:
        if p.poll() is None:
            p.kill()
            p.wait()
    CLIENTS.clear()
    for s in list(STARTED):
        s.stop()


class CairnNode(Server):
    """cairnd with development certificates from one CA shared by the run."""

    def __init__(self, bins, workdir, name, sync, peers=(), exchange=True):
        self.bins = bins
        self.data = os.path.join(workdir, name)
        self.port = free_port()
        argv = [os.path.join(bins, "cairnd"), "--dev", "--data", self.data,
                "--listen", f"127.0.0.1:{self.port}",
                "--sync-writes", "on" if sync else "off",
                "--new-device"]  # fresh: no restore guard to wait for
        for p in peers:
            argv += ["--peer", f"127.0.0.1:{p.port}"]
        if not exchange:
            argv += ["--peer-exchange", "off"]
        env = dict(os.environ, CAIRN_DEV_CA=os.path.join(workdir, "dev-ca"))
        super().__init__(f"cairnd-{name}", argv, self.data + ".log", env)

    def wait_ready(self):
        cli = os.path.join(self.bins, "cairn")

        def answers():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited; see {self.data}.log")
            return subprocess.run([cli, "--data", self.data, "status"],
                                  capture_output=True).returncode == 0
        wait_until(f"{self.name} to answer", answers)
        with open(os.path.join(self.data, "dev-node-id")) as f:
            self.device = f.read().strip()
        return self


class NatsServer(Server):
    """nats-server with JetStream file storage; `durable` asks for an fsync per
    write (sync_interval: always) when this nats-server knows the option."""

    def __init__(self, workdir, name, durable, sync_always_supported):
        self.port = free_port()
        store = os.path.join(workdir, name)
        os.makedirs(store, exist_ok=True)
        sync = "\n  sync_interval: always" if durable and sync_always_supported else ""
        conf = os.path.join(workdir, name + ".conf")
        with open(conf, "w") as f:
            f.write(f"listen: 127.0.0.1:{self.port}\n"
                    f"jetstream {{\n  store_dir: \"{store}\"{sync}\n}}\n")
        super().__init__(f"nats-{name}", ["nats-server", "-c", conf],
                         os.path.join(workdir, name + ".log"))
        self.url = f"nats://127.0.0.1:{self.port}"

    def wait_ready(self):
        wait_until(f"{self.name} to listen", lambda: port_open(self.port))
        return self


def nats_knows_sync_always(workdir):
    """True when this nats-server accepts `sync_interval: always` (2.10 and later)."""
    conf = os.path.join(workdir, "probe.conf")
    with open(conf, "w") as f:
        f.write("jetstream { sync_interval: always }\n")
    r = subprocess.run(["nats-server", "-c", conf, "-t"], capture_output=True, text=True)
    return "unknown field" not in (r.stdout + r.stderr)


class RedisServer(Server):
    """redis-server with an append-only file: fsync every second or on every write."""

    def __init__(self, workdir, name, durable):
        self.port = free_port()
        data = os.path.join(workdir, name)
        os.makedirs(data, exist_ok=True)
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", data, "--appendonly", "yes",
                "--appendfsync", "always" if durable else "everysec",
                "--save", "", "--daemonize", "no"]
        super().__init__(f"redis-{name}", argv, os.path.join(workdir, name + ".log"))

    def wait_ready(self):
        wait_until(f"{self.name} to listen", lambda: port_open(self.port))
        return self
