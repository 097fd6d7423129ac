"""A hostile peer for tests against a real cairnd: it holds a valid certificate of
the network (certs/make-node.sh), completes TLS 1.3 and the hello like a node,
then sends whatever a test tells it to. Messages are encoded by hand (a few
protobuf fields of src/wire/cairn.proto), so it needs nothing but Python.

    with HostilePeer("127.0.0.1", port, pki, "mallory") as m:
        m.send(peer_exchange([("junk-1", "127.0.0.1:9")]))
"""
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

# Envelope fields (src/wire/cairn.proto).
HELLO, PING, PONG, GOODBYE, PEER_EXCHANGE, CATALOGUE, SUBSCRIBE = 1, 2, 3, 4, 5, 6, 7
CREDIT, STREAM_HEADER, SNAPSHOT = 9, 10, 11
PROTOCOL_VERSION = 2


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field_bytes(number, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_uint(number, value):
    return varint(number << 3) + varint(value)


def envelope(number, payload):
    return field_bytes(number, payload)


def hello(node_id):
    return envelope(HELLO, field_bytes(1, node_id) + field_uint(2, PROTOCOL_VERSION))


def peer_exchange(peers):
    body = b"".join(field_bytes(1, field_bytes(1, n) + field_bytes(2, a)) for n, a in peers)
    return envelope(PEER_EXCHANGE, body)


def read_varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def varint_fields(message):
    """The varint fields of a message: number -> value (others skipped)."""
    out, i = {}, 0
    while i < len(message):
        key, i = read_varint(message, i)
        if key & 7 == 0:
            out[key >> 3], i = read_varint(message, i)
        elif key & 7 == 2:
            n, i = read_varint(message, i)
            i += n
        else:
            break
    return out


def top_field(message):
    """The number and bytes of a message's first length-delimited field."""
    key, i = read_varint(message, 0)
    if key & 7 != 2:
        return key >> 3, b""
    n, i = read_varint(message, i)
    return key >> 3, message[i:i + n]


class HostilePeer:
    """A TLS connection to a node that has completed the hello; answers pings in
    the background so that it stays active, and counts what it receives."""

    def __init__(self, host, port, pki, name, timeout=10, keep_reading=True):
        self.sock = tls_socket(host, port, pki, name, timeout)
        self.lock = threading.Lock()
        self.received = {}  # Envelope field number -> count
        self.granted = 0  # stream credit the node granted (Subscribe, Credit)
        self.spent = 0    # what spend() counted against it
        self.closed = False
        self.goodbye = ""  # the node's reason, when it said goodbye
        self.hello_seen = threading.Event()
        self.keep_reading = keep_reading  # False: stop reading once the hello came
        self.send(hello(name))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.hello_seen.wait(timeout):
            raise RuntimeError(f"{name}: no hello from the node within {timeout} s")

    def send(self, message):
        with self.lock:
            self.sock.sendall(len(message).to_bytes(4, "big") + message)

    def _read(self):
        # An SSL socket must not be read and written by two threads at once (the
        # TLS state is shared): the reader waits for bytes outside the lock and
        # reads them under it, the lock that send() holds while it writes.
        buf = b""
        try:
            while True:
                if not self.sock.pending():
                    readable, _, _ = select.select([self.sock], [], [], 0.2)
                    if not readable:
                        continue
                with self.lock:
                    data = self.sock.recv(1 << 16)
                if not data:
                    break
                buf += data
                while len(buf) >= 4:
                    n = int.from_bytes(buf[:4], "big")
                    if len(buf) < 4 + n:
                        break
                    msg, buf = buf[4:4 + n], buf[4 + n:]
                    number, body = top_field(msg)
                    self.received[number] = self.received.get(number, 0) + 1
                    if number == SUBSCRIBE:
                        self.granted += varint_fields(body).get(3, 0)
                    elif number == CREDIT:
                        self.granted += varint_fields(body).get(2, 0)
                    if number == GOODBYE:
                        self.goodbye = top_field(body)[1].decode(errors="replace")
                    if number == HELLO:
                        self.hello_seen.set()
                        if not self.keep_reading:
                            return
                    elif number == PING:
                        self.send(envelope(PONG, body))
        except (OSError, ssl.SSLError, IndexError, ValueError):  # ValueError: closed here
            pass
        self.closed = True

    def send_many(self, messages):
        """Sends many messages in one write (a flood), or until the node closes."""
        blob = b"".join(len(m).to_bytes(4, "big") + m for m in messages)
        try:
            with self.lock:
                self.sock.sendall(blob)
        except (OSError, ssl.SSLError):
            self.closed = True

    def spend(self, n, timeout=30):
        """Waits until the node has granted credit for `n` more bytes of stream
        messages (as an honest server does); False when it did not in time."""
        if not wait_for(lambda: self.closed or self.granted - self.spent >= n, timeout,
                        step=0.01):
            return False
        self.spent += n
        return not self.closed

    def close(self):
        # Shut down first: a close alone, while the reader thread waits on the
        # socket, sent no FIN, and the node kept the connection for seconds.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tls_socket(host, port, pki, name, timeout=10):
    """A TLS connection with `name`'s certificate and nothing sent on it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(os.path.join(pki, "ca.crt"))
    ctx.load_cert_chain(os.path.join(pki, name + ".crt"), os.path.join(pki, name + ".key"))
    ctx.check_hostname = False
    raw = socket.create_connection((host, port), timeout=timeout)
    return ctx.wrap_socket(raw)


def is_closed(sock, wait=0.5):
    """True when the node has ended (or reset) the connection."""
    sock.settimeout(wait)
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except (OSError, ssl.SSLError):
        return True


def rss_mb(pid):
    """A process's resident set size in MiB (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def wait_for(done, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(step)
    return done()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Network:
    """A network CA and node certificates made by certs/, real cairnd processes on
    loopback, and the checks of one test: check() prints each result, finish()
    stops every process and exits 1 (logs kept) when a check failed.

        net = Network(cairnd, cairn, certs, ["victim", "mallory"], "cairn-x-")
        try: ... net.check(ok, "what") ...
        finally: net.finish()
    """

    def __init__(self, cairnd, cairn, certs, names, prefix):
        self.cairnd, self.cairn = cairnd, cairn
        self.work = tempfile.mkdtemp(prefix=prefix)
        self.pki = os.path.join(self.work, "pki")
        self.procs, self.failures = [], []
        subprocess.run([os.path.join(certs, "make-ca.sh"), self.pki], check=True,
                       capture_output=True)
        for n in names:
            subprocess.run([os.path.join(certs, "make-node.sh"), self.pki, n], check=True,
                           capture_output=True)

    def check(self, ok, what):
        print(("ok: " if ok else "FAIL: ") + what, flush=True)
        if not ok:
            self.failures.append(what)

    def data(self, name):
        return os.path.join(self.work, name)

    def start(self, name, port, *extra, ca=None, wait=20):
        """cairnd `name` on 127.0.0.1:port with its certificate (trusting `ca`, by
        default the network CA); waits for its socket."""
        data = self.data(name)
        log = open(data + ".log", "a")
        # A sanitized build keeps freed memory in a quarantine (256 MiB by default),
        # which would show as the node's growth: keep it small, so that RSS
        # measures what the node holds.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=8").lstrip(":")
        p = subprocess.Popen(
            [self.cairnd, "--data", data, "--listen", f"127.0.0.1:{port}",
             "--ca", ca or self.pki + "/ca.crt", "--cert", f"{self.pki}/{name}.crt",
             "--key", f"{self.pki}/{name}.key", *extra],
            stdout=log, stderr=log, env=env)
        self.procs.append(p)
        if not wait_for(lambda: os.path.exists(os.path.join(data, "cairn.sock")), wait):
            raise RuntimeError(f"{name} did not start: " + self.log(name)[-2000:])
        return p

    def run_once(self, name, *extra, data=None, timeout=20):
        """cairnd with `name`'s certificate and data directory (or `data`'s), run
        to its end (a start that must fail), on a free port; the CompletedProcess."""
        return subprocess.run(
            [self.cairnd, "--data", self.data(data or name), "--ca", self.pki + "/ca.crt",
             "--cert", f"{self.pki}/{name}.crt", "--key", f"{self.pki}/{name}.key",
             "--listen", f"127.0.0.1:{free_port()}", *extra],
            capture_output=True, text=True, timeout=timeout)

    def stop(self):
        """Kills every node and deletes the work directory (benchmarks: no checks)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(self.work, ignore_errors=True)

    def log(self, name):
        with open(self.data(name) + ".log") as f:
            return f.read()

    def cli(self, name, *args, input=None, timeout=20):
        return subprocess.run([self.cairn, "--data", self.data(name), *args], input=input,
                              capture_output=True, text=True, timeout=timeout)

    def status(self, name):
        r = self.cli(name, "status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else {}

    def finish(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if sys.exc_info()[0] is not None:  # called from a finally: the test broke
            self.failures.append(f"the test stopped with {sys.exc_info()[1]!r}")
        if self.failures:
            print("logs kept in " + self.work)
            print("FAIL: " + "; ".join(self.failures))
            sys.exit(1)
        shutil.rmtree(self.work, ignore_errors=True)
        print("PASS")
