"""A fault-injecting TCP proxy on loopback, run on an asyncio loop in a thread.

One Proxy listens on a free 127.0.0.1 port and forwards each connection to a
target. Directions: "up" is client -> target, "down" is target -> client. Faults
(set from any thread; each takes effect at once on open connections):

  delay(ms)        every chunk is delivered `ms` later (order kept)
  rate(bps)        at most `bps` bytes per second per direction (a slow link)
  stall(on)        hold every byte both ways (packets lost, TCP retransmitting)
  discard(dir)     drop every byte of one direction ("up" / "down") silently: a
                   one-way partition (the TLS stream is broken once it heals)
  partition(on)    close every connection and close new ones at once
  cut()            close every connection once (a reset link)
  heal()           back to a clean link (connections that survived carry on)

TLS between the nodes means bytes cannot be altered or reordered meaningfully
inside a connection; delay, stall, discard and cut are what matter.
Thread-safety: every public method may be called from any thread.
"""
import asyncio
import socket
import threading
import time


class Proxy:
    def __init__(self, name, target_port, history=None):
        self.name = name
        self.target_port = target_port
        self.history = history
        self.delay_s = 0.0
        self.rate_bps = 0
        self.stalled = False
        self.discarding = set()
        self.partitioned = False
        self.conns = set()
        self.accepted = 0
        self.bytes = {"up": 0, "down": 0}
        self._loop = asyncio.new_event_loop()
        self._resume = None
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"proxy-{name}")
        self._thread.start()
        self._ready.wait(10)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    # ---- loop thread
    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._resume = asyncio.Event()
        self._resume.set()
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, sock=self._sock))
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    async def _accept(self, cr, cw):
        self.accepted += 1
        if self.partitioned:
            cw.transport.abort()
            return
        try:
            tr, tw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.transport.abort()
            return
        conn = (cw, tw)
        self.conns.add(conn)
        up = asyncio.ensure_future(self._pump(cr, tw, "up"))
        down = asyncio.ensure_future(self._pump(tr, cw, "down"))
        await asyncio.wait([up, down], return_when=asyncio.FIRST_COMPLETED)
        for t in (up, down):
            t.cancel()
        for w in conn:
            w.transport.abort()
        self.conns.discard(conn)

    async def _pump(self, reader, writer, direction):
        queue = asyncio.Queue()
        sender = asyncio.ensure_future(self._send(queue, writer, direction))
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await queue.put((time.monotonic() + self.delay_s, data))
                while queue.qsize() > 256 and not sender.done():
                    await asyncio.sleep(0.005)  # bounded: the sender lags behind
                if sender.done():
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            await queue.put((0, None))
            try:
                await asyncio.wait_for(sender, 30)
            except (asyncio.TimeoutError, Exception):
                sender.cancel()

    async def _send(self, queue, writer, direction):
        while True:
            due, data = await queue.get()
            if data is None:
                return
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            while self.stalled:
                await self._resume.wait()
            if direction in self.discarding:
                continue
            if self.rate_bps:
                await asyncio.sleep(len(data) / self.rate_bps)
            self.bytes[direction] += len(data)
            writer.write(data)
            await writer.drain()

    def _abort_all(self):
        for conn in list(self.conns):
            for w in conn:
                w.transport.abort()

    def _call(self, fn):
        done = threading.Event()

        def wrapped():
            try:
                fn()
            finally:
                done.set()
        self._loop.call_soon_threadsafe(wrapped)
        done.wait(10)

    def _log(self, phase, name, detail=""):
        if self.history is not None:
            self.history.record("fault", name=name, node=self.name, phase=phase,
                                detail=detail)

    # ---- faults (any thread)
    def delay(self, ms):
        self._log("start", "delay", f"{ms} ms")
        self.delay_s = ms / 1000.0

    def rate(self, bps):
        self._log("start", "slow", f"{bps} B/s")
        self.rate_bps = bps

    def stall(self):
        self._log("start", "stall")

        def f():
            self.stalled = True
            self._resume.clear()
        self._call(f)

    def discard(self, direction):
        self._log("start", "oneway", direction)
        self.discarding.add(direction)

    def partition(self):
        self._log("start", "partition")

        def f():
            self.partitioned = True
            self._abort_all()
        self._call(f)

    def cut(self):
        self._log("start", "cut")
        self._call(self._abort_all)
        self._log("heal", "cut")

    def heal(self):
        def f():
            self.delay_s = 0.0
            self.rate_bps = 0
            self.discarding.clear()
            self.partitioned = False
            self.stalled = False
            self._resume.set()
        self._call(f)
        self._log("heal", "all")

    def close(self):
        if self._loop.is_closed():
            return
        try:
            self._call(self._abort_all)
            self._loop.call_soon_threadsafe(self._loop.stop)
        except RuntimeError:
            return
        self._thread.join(10)


class Refuser:
    """A listening port that closes every connection at once: an --advertise
    address for nodes that must only be dialled through their proxies."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="refuser")
        self._thread.start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _run(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
                c.close()
            except (socket.timeout, OSError):
                continue

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
