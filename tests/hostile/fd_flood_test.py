#!/usr/bin/env python3
"""A connection flood against a real cairnd whose open-file limit is the common
1,024 (hard and soft, set with prlimit before it starts).

Plain TCP clients keep 1,500 connections open (each one reopened when the node
drops it) while a local user appends about 24 MiB, enough for LevelDB to switch
its log and write tables, i.e. to open files. Before cairnd shared its
descriptors out, the flood took them all: LevelDB failed with "Too many open
files" and the journal refused every append until a restart. Now the node must
refuse the surplus connections at accept, acknowledge every append, answer
status, and log no such error; the flood must really have been refused (a run
in which no connection was turned away proves nothing).

    fd_flood_test.py CAIRND CAIRN [--long]

--long (tests/faults/run --long): 200,000 events (about 200 MiB, many LevelDB
compactions, each opening files) under the same flood.
"""
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

FLOOD = 1500
LONG = "--long" in sys.argv[3:]
EVENTS = 200_000 if LONG else 24000
PAYLOAD = "x" * 1000


def main():
    cairnd, cairn = sys.argv[1], sys.argv[2]
    # The flood itself needs more than 1,500 descriptors here.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FLOOD + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            print(f"skipped: this process may open only {hard} files")
            print("0 passed, 0 failed, 1 skipped")
            return 0
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    tmp = tempfile.mkdtemp(prefix="cairn-fdflood-")
    data = os.path.join(tmp, "n")
    env = dict(os.environ, CAIRN_DEV_CA=os.path.join(tmp, "dev-ca"))
    log_path = os.path.join(tmp, "n.log")
    log = open(log_path, "w")
    node = subprocess.Popen(["prlimit", "--nofile=1024:1024", cairnd, "--dev", "--data",
                             data, "--listen", "127.0.0.1:0", "--sync-writes", "off"],
                            stdout=log, stderr=log, env=env)
    stop = threading.Event()
    counts = {"opened": 0, "refused": 0, "closed_by_node": 0}
    failures = []

    def cli(*args, stdin=None, timeout=120):
        return subprocess.run([cairn, "--data", data, *args], input=stdin,
                              capture_output=True, text=True, timeout=timeout, env=env)

    def flood(port):
        sel = selectors.DefaultSelector()
        open_socks = set()
        deadline = time.monotonic() + (1500 if LONG else 300)  # bounded even if it hangs
        while not stop.is_set() and time.monotonic() < deadline:
            while len(open_socks) < FLOOD:
                try:
                    s = socket.socket()
                except OSError:
                    break
                s.setblocking(False)
                try:
                    s.connect_ex(("127.0.0.1", port))
                except OSError:
                    s.close()
                    break
                sel.register(s, selectors.EVENT_READ)
                open_socks.add(s)
                counts["opened"] += 1
            for key, _ in sel.select(timeout=0.05):
                s = key.fileobj
                try:
                    got = s.recv(4096)
                except ConnectionResetError:
                    got = None
                    counts["refused"] += 1
                except OSError:
                    got = b""
                if not got:
                    if got is not None:
                        counts["closed_by_node"] += 1
                    sel.unregister(s)
                    s.close()
                    open_socks.discard(s)
        for s in open_socks:
            s.close()

    try:
        port = None
        for _ in range(400):
            m = re.search(r"listening for peers on 127\.0\.0\.1:(\d+)", open(log_path).read())
            if m and os.path.exists(os.path.join(data, "cairn.sock")):
                port = int(m.group(1))
                break
            if node.poll() is not None:
                break
            time.sleep(0.05)
        if port is None:
            raise SystemExit("cairnd did not start:\n" + open(log_path).read())
        device = open(os.path.join(data, "dev-node-id")).read().strip()
        flooder = threading.Thread(target=flood, args=(port,), daemon=True)
        flooder.start()
        time.sleep(2)  # the flood is at its peak before the first append

        lines = "".join(json.dumps({"type": "bulk", "payload": {"i": i, "p": PAYLOAD}}) + "\n"
                        for i in range(1, EVENTS + 1))
        r = cli("append", device, "--stdin", "--json", stdin=lines, timeout=1200 if LONG else 300)
        acked = 0
        for line in r.stdout.splitlines():
            acked = max(acked, json.loads(line)["last"])
        if r.returncode != 0 or acked != EVENTS:
            failures.append(f"append: exit {r.returncode}, acked {acked} of {EVENTS}: "
                            f"{r.stderr[-400:]}")
        st = cli("status", "--json", timeout=30)
        if st.returncode != 0:
            failures.append(f"status during the flood failed: {st.stderr[-300:]}")
        one = cli("append", device, "note", '{"after":1}', timeout=30)
        if one.returncode != 0 or one.stdout.strip() != str(EVENTS + 1):
            failures.append(f"a later append failed: {one.stdout} {one.stderr[-300:]}")
        stop.set()
        flooder.join(timeout=30)
        text = open(log_path).read()
        if "Too many open files" in text:
            failures.append("the node ran out of file descriptors:\n" + text[-1500:])
        if node.poll() is not None:
            failures.append(f"cairnd exited with {node.returncode}")
        m = re.search(r"peer connections at most (\d+)", text)
        if not m:
            failures.append("no file-descriptor budget in the log")
        turned_away = counts["refused"] + counts["closed_by_node"]
        print(f"flood: {counts['opened']} connections opened, {counts['refused']} reset at "
              f"accept, {counts['closed_by_node']} closed by the node; "
              f"budget: {m.group(0) if m else '?'}")
        if turned_away == 0 or counts["opened"] < FLOOD:
            failures.append("the flood never reached the node's limit: the run proves nothing")
    finally:
        stop.set()
        if node.poll() is None:
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=20)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
        log.close()
        if failures:
            print("--- node log (tail)\n" + open(log_path).read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)
    for f in failures:
        print("FAIL:", f)
    print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
