"""The fault scenarios. Each takes (cluster-building Run, long) and returns after
healing every fault, waiting for convergence and dumping every replica; run.py
checks the history. Sizes: CI-sized by default, `long=True` for the long run."""
import os
import random
import signal
import time

from cluster import copy_dir
from proxy import Proxy, Refuser

FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1"


def crash_source(run, long):
    """SIGKILL of the source every 0.5-3 s (CI: 0.5-1 s) during a bulk append; it
    restarts at once (its restore guard holds appends until B answers)."""
    kills = run.size("kills", 50, 200)
    lo, hi = (0.5, 3.0) if long else (0.5, 1.0)
    c = run.cluster(["a", "b"])
    b = c.add("b")
    a = c.add("a", peers=[b.address])
    b.start()
    a.start()
    run.begin(c, devices=["a"], params={"kills": kills, "interval_s": [lo, hi]})
    c.writer(a, rate=run.size("rate", 300, 1000))
    c.tail(a, "a")
    c.tail(b, "a")
    rng = random.Random(run.seed)
    for i in range(kills):
        time.sleep(rng.uniform(lo, hi))
        c.history.record("fault", name="kill_source", node="a", phase="start",
                         detail=f"{i + 1}/{kills}")
        a.kill(signal.SIGKILL)
        a.start()
        c.history.record("fault", name="kill_source", node="a", phase="heal")
    run.finish(c, ["a"])


def crash_line(run, long):
    """A - B - C, appends at A and C: SIGKILL of the relay B and the subscriber C,
    down 0.2-2 s each, with tails at B and C."""
    kills = run.size("kills", 14, 80)
    c = run.cluster(["a", "b", "c"])
    a = c.add("a")
    b = c.add("b", peers=[a.address])
    cc = c.add("c", peers=[b.address])
    for n in (a, b, cc):
        n.start()
    run.begin(c, devices=["a", "c"], params={"kills": kills})
    c.writer(a, rate=run.size("rate", 400, 800))
    c.writer(cc, rate=run.size("rate_c", 100, 200))
    c.tail(cc, "a")
    c.tail(b, "a")
    c.tail(a, "c")
    rng = random.Random(run.seed)
    for i in range(kills):
        time.sleep(rng.uniform(0.3, 1.5))
        victim = rng.choice([b, cc])
        name = "kill_relay" if victim is b else "kill_subscriber"
        c.history.record("fault", name=name, node=victim.name, phase="start",
                         detail=f"{i + 1}/{kills}")
        victim.kill(signal.SIGKILL)
        time.sleep(rng.uniform(0.2, 2.0))
        victim.start()
        c.history.record("fault", name=name, node=victim.name, phase="heal")
    run.finish(c, ["a", "c"])


def pause(run, long):
    """A - B - C: SIGSTOP of a node for longer than the dead interval, then
    SIGCONT; appends at A and C go on throughout."""
    victims = ["b", "c", "a"] if long else ["b"]
    hold = run.dead_interval_s * 1.5 + (5 if long else 0)
    c = run.cluster(["a", "b", "c"])
    a = c.add("a")
    b = c.add("b", peers=[a.address])
    cc = c.add("c", peers=[b.address])
    for n in (a, b, cc):
        n.start()
    run.begin(c, devices=["a", "c"], params={"pauses": victims, "pause_s": hold})
    c.writer(a, rate=300)
    c.writer(cc, rate=100)
    c.tail(cc, "a")
    c.tail(a, "c")
    c.tail(b, "a")
    for v in victims:
        time.sleep(2)
        n = c.nodes[v]
        c.history.record("fault", name="pause", node=v, phase="start", detail=f"{hold} s")
        n.pause()
        time.sleep(hold)
        n.resume()
        c.history.record("fault", name="pause", node=v, phase="heal")
    time.sleep(3)
    run.finish(c, ["a", "c"], converge_s=90)


def network(run, long):
    """B dials A and C through fault-injecting proxies (A and C advertise their
    proxy, B a port that refuses), appends at A and C, tails everywhere: delay, a
    slow link, stalls, cuts, one-way partitions, full partitions and flapping."""
    c = run.cluster(["a", "b", "c"])
    refuser = Refuser()
    a = c.add("a")
    cc = c.add("c")
    pa = Proxy("b-a", a.port, c.history)
    pc = Proxy("b-c", cc.port, c.history)
    c.proxies += [pa, pc, refuser]
    a.advertise, cc.advertise = pa.address, pc.address
    b = c.add("b", peers=[pa.address, pc.address], advertise=refuser.address)
    for n in (a, cc, b):
        n.start()
    run.begin(c, devices=["a", "c"], params={"long": long})
    c.writer(a, rate=400)
    c.writer(cc, rate=200)
    c.tail(cc, "a")
    c.tail(a, "c")
    c.tail(b, "a")
    rng = random.Random(run.seed)
    scale = 3 if long else 1
    rounds = run.size("rounds", 1, 3)
    for r in range(rounds):
        time.sleep(2)
        pa.delay(rng.choice([50, 200, 500]))
        pc.rate(20_000)
        time.sleep(4 * scale)
        pa.heal(), pc.heal()
        time.sleep(1)
        pa.stall()
        time.sleep(5 if not long else rng.choice([5, 15, run.dead_interval_s + 5]))
        pa.heal()
        time.sleep(1)
        for _ in range(3 * scale):
            rng.choice([pa, pc]).cut()
            time.sleep(rng.uniform(0.3, 1.5))
        direction = rng.choice(["up", "down"])
        pa.discard(direction)
        time.sleep(5 if not long else rng.choice([5, run.dead_interval_s + 5]))
        pa.heal()
        time.sleep(1)
        pc.partition()
        time.sleep(6 * scale)
        pc.heal()
        flap_end = time.monotonic() + 6 * scale
        while time.monotonic() < flap_end:
            pa.partition()
            time.sleep(rng.uniform(0.2, 1.0))
            pa.heal()
            time.sleep(rng.uniform(0.2, 1.0))
    pa.heal(), pc.heal()
    run.finish(c, ["a", "c"], converge_s=90)


def source_with_two_peers(run):
    """A, the source, with --peer B and C; B and C with --peer A; all started."""
    c = run.cluster(["a", "b", "c"])
    b = c.add("b")
    cc = c.add("c")
    a = c.add("a", peers=[b.address, cc.address])
    b.peers, cc.peers = [a.address], [a.address]
    for n in (b, cc, a):
        n.start()
    return c, a, b, cc


def storage(run, long):
    """The source A loses its tail (an older copy of its data directory comes
    back) and, later, its whole data directory; each time it restarts with peers
    and its restore guard must catch it up before it appends again. Then a bit
    flipped in a LevelDB file of replica B must stop B's start-up; B started empty
    is refilled from A and C."""
    rounds = run.size("rounds", 1, 5)
    c, a, b, cc = source_with_two_peers(run)
    run.begin(c, devices=["a"], params={"rounds": rounds})
    w = c.writer(a, rate=500)
    c.tail(cc, "a")
    c.tail(b, "a")
    backup = os.path.join(c.work, "a-backup")
    for r in range(rounds):
        time.sleep(2)
        a.kill(signal.SIGKILL)            # a crash, then a copy: a consistent backup
        copy_dir(a.data, backup)
        a.start()
        time.sleep(3)
        # The restore guard can only give back what the peers hold: let them hold
        # every acknowledged event, then take the tail away.
        run.quiesce(c, w, ["a"])
        a.kill(signal.SIGKILL)
        c.history.record("fault", name="lose_tail", node="a", phase="start")
        copy_dir(backup, a.data)
        a.start()
        c.history.record("fault", name="lose_tail", node="a", phase="heal")
        w.pause_flag.clear()
        time.sleep(3)
        run.quiesce(c, w, ["a"])
        a.kill(signal.SIGKILL)
        c.history.record("fault", name="lose_data", node="a", phase="start")
        import shutil
        shutil.rmtree(a.data)
        a.start()
        c.history.record("fault", name="lose_data", node="a", phase="heal")
        w.pause_flag.clear()
        time.sleep(2)
        bitflip(run, c, b, r)
    run.finish(c, ["a"])


def bitflip(run, c, node, r):
    """Stops `node`, flips one bit of one of its LevelDB files, expects start-up to
    refuse with a message naming the damage, then starts it with an empty data
    directory and lets the peers refill it."""
    node.kill(signal.SIGTERM)
    node.start()          # LevelDB turns its log into a table at open
    time.sleep(1)
    node.kill(signal.SIGKILL if r % 2 else signal.SIGTERM)
    jdir = os.path.join(node.data, "journal")
    files = sorted(f for f in os.listdir(jdir) if f.endswith((".ldb", ".log"))
                   and os.path.getsize(os.path.join(jdir, f)) > 64)
    kind = ".log" if r % 2 else ".ldb"
    pick = [f for f in files if f.endswith(kind)] or files
    victim = os.path.join(jdir, pick[-1])
    size = os.path.getsize(victim)
    rng = random.Random(run.seed + r)
    # In a table, a bit of its data blocks: LevelDB skips a damaged filter block
    # (it only speeds up reads), so a flip there is no damage to detect.
    end = table_data_end(victim) if victim.endswith(".ldb") else size
    offset = rng.randrange(min(16, end - 1), end)
    with open(victim, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << rng.randrange(8))]))
    c.history.record("fault", name="bitflip", node=node.name, phase="start",
                     detail=f"{os.path.basename(victim)} offset {offset} of {size}")
    before = os.path.getsize(node.log_path)
    node.start(wait=False, expect_exit=True)
    deadline = time.monotonic() + 60
    while node.proc.poll() is None and not node.ready() and time.monotonic() < deadline:
        time.sleep(0.05)
    rc = node.proc.poll()  # None: it started serving (or hung) on damaged storage
    with open(node.log_path, errors="replace") as f:
        f.seek(before)
        said = f.read()[-2000:]
    if rc is None or rc == 0:
        c.history.record("finding", what="damage_not_detected", node=node.name,
                         file=os.path.basename(victim), offset=offset, rc=rc)
        node.kill(signal.SIGKILL)
    elif "damaged" not in said.lower():
        c.history.record("finding", what="damage_message_unclear", node=node.name,
                         rc=rc, said=said[-400:])
    c.history.record("process", node=node.name, event="exit", pid=node.proc.pid, rc=rc,
                     expected=True, said=said[-400:])
    import shutil
    shutil.rmtree(node.data)
    node.start(new_device=False)
    c.history.record("fault", name="bitflip", node=node.name, phase="heal",
                     detail="started empty")


def table_data_end(path):
    """Where the data blocks of a LevelDB table end: the offset of its first meta
    block (the filter), else of its metaindex block (see leveldb table_format.md:
    data blocks, meta blocks, metaindex, index, 48-byte footer)."""
    def varint(buf, i):
        v = shift = 0
        while True:
            b = buf[i]
            v |= (b & 0x7F) << shift
            i += 1
            if b < 0x80:
                return v, i
            shift += 7
    with open(path, "rb") as f:
        data = f.read()
    footer = data[-48:]
    meta_off, i = varint(footer, 0)
    meta_size, _ = varint(footer, i)
    block = data[meta_off:meta_off + meta_size]
    if meta_size > 8:  # entry 0: shared, non_shared, value length, key, value
        _, i = varint(block, 0)
        non_shared, i = varint(block, i)
        _, i = varint(block, i)
        filter_off, _ = varint(block, i + non_shared)
        return filter_off
    return meta_off


def time_jump(run, long):
    """A wall-clock jump of +1 h and -1 h on the source A, then on replica B
    (libfaketime, monotonic clock left alone): only event times may change."""
    c = run.cluster(["a", "b"])
    files = {}
    env = {}
    for n in ("a", "b"):
        files[n] = os.path.join(c.work, f"faketime-{n}")
        with open(files[n], "w") as f:
            f.write("+0\n")
        env[n] = run.faketime_env(files[n])
    a = c.add("a", env=env["a"])
    b = c.add("b", peers=[a.address], env=env["b"])
    a.start()
    b.start()
    run.begin(c, devices=["a"], params={"long": long})
    c.writer(a, rate=300)
    c.tail(b, "a")
    c.tail(a, "a")
    hold = 10 if long else 3
    for node, offset in [("a", "+1h"), ("a", "-1h"), ("b", "+1h"), ("b", "-1h")]:
        time.sleep(hold)
        c.history.record("fault", name="clock_jump", node=node, phase="start",
                         detail=offset)
        with open(files[node], "w") as f:
            f.write(offset + "\n")
        time.sleep(hold)
        with open(files[node], "w") as f:
            f.write("+0\n")
        c.history.record("fault", name="clock_jump", node=node, phase="heal")
    time.sleep(2)
    run.finish(c, ["a"])


def restore(run, long):
    """The source A loses its whole data directory (its key kept, as in a
    reinstall) while both its peers are down, for longer than any time limit the
    restore guard ever had (5 s); then the three come back in another order each
    round: A first, a peer first, or both peers first. A must refuse appends until
    both peers reported its head (a writer that gets in before is a finding: it
    would re-issue seqs), catch its stream up, and continue it; the checker proves
    that no seq was acknowledged twice and nothing acknowledged was lost."""
    rounds = run.size("rounds", 3, 9)
    down_s = 7 if not long else 12
    c, a, b, cc = source_with_two_peers(run)
    run.begin(c, devices=["a"], params={"rounds": rounds, "down_s": down_s})
    w = c.writer(a, rate=400)
    c.tail(b, "a")
    c.tail(cc, "a")
    orders = [["a", "b", "c"], ["b", "a", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    import shutil
    for r in range(rounds):
        time.sleep(2)
        # Wiping A loses what only A holds: first let the peers hold every
        # acknowledged event (the writer waits until A is back and unguarded).
        run.quiesce(c, w, ["a"])
        a.kill(signal.SIGKILL)
        for n in (b, cc):
            n.kill(signal.SIGTERM)
        c.history.record("fault", name="lose_data", node="a", phase="start",
                         detail=f"round {r + 1}: peers down")
        shutil.rmtree(a.data)
        order = orders[r % len(orders)]
        for name in order:
            node = c.nodes[name]
            node.start(new_device=False)
            if name == "a" and order[0] == "a":
                time.sleep(down_s)  # alone, past the old time limit
                st = a.status() or {}
                guard = next((d.get("guard") for d in st.get("devices", [])
                              if d.get("device") == "a"), None)
                if not guard:
                    c.history.record("finding", what="guard_released_alone", node="a",
                                     status=st)
            time.sleep(0.5)
        c.history.record("fault", name="lose_data", node="a", phase="heal",
                         detail="order " + "".join(order))
        w.pause_flag.clear()
    run.finish(c, ["a"])


def retention(run, long):
    """A, the source, takes a snapshot every 100 events while its followers are
    away in turn: C killed (SIGKILL), B stopped (SIGSTOP) past the dead interval. A
    snapshot used to delete the events below it at once, so a follower that came
    back got the snapshot and never the events it had missed (issue 13, defect 5).
    Now A keeps them until both hold them: every tail delivers every event as an
    event (a retention gap in a tail is a finding) and the checker proves nothing
    acknowledged was lost. Once both hold everything, A must have deleted what
    they hold (a finding if it kept it: retention that never deletes is no
    retention)."""
    rounds = run.size("rounds", 4, 12)
    away_s = 3 if not long else 10
    c = run.cluster(["a", "b", "c"])
    # B and C keep everything (their retention pass is an hour away), so their
    # dumps let the checker see every acknowledged event; A deletes.
    keep = ["--retain-every-ms", "3600000"]
    b = c.add("b", extra=keep)
    cc = c.add("c", extra=keep)
    a = c.add("a", peers=[b.address, cc.address],
              extra=["--snapshot-every", "100", "--retain-every-ms", "500"])
    b.peers, cc.peers = [a.address], [a.address]
    for n in (b, cc, a):
        n.start()
    run.begin(c, devices=["a"], params={"rounds": rounds, "away_s": away_s})
    w = c.writer(a, rate=run.size("rate", 400, 1000))
    c.tail(a, "a")
    c.tail(b, "a")
    c.tail(cc, "a")
    for r in range(rounds):
        time.sleep(1.5)
        if r % 2 == 0:
            c.history.record("fault", name="kill_follower", node="c", phase="start",
                             detail=f"round {r + 1}: {away_s} s")
            cc.kill(signal.SIGKILL)
            time.sleep(away_s)
            cc.start()
            c.history.record("fault", name="kill_follower", node="c", phase="heal")
        else:
            hold = max(away_s, run.dead_interval_s * 1.5)
            c.history.record("fault", name="pause", node="b", phase="start",
                             detail=f"round {r + 1}: {hold} s")
            b.pause()
            time.sleep(hold)
            b.resume()
            c.history.record("fault", name="pause", node="b", phase="heal")
    # Every follower holds every acknowledged event: A deletes below its snapshot.
    run.quiesce(c, w, ["a"])
    deadline = time.monotonic() + 20
    first = 1
    while time.monotonic() < deadline:
        st = a.status() or {}
        first = next((d["first"] for d in st.get("devices", []) if d["device"] == "a"), 1)
        if first > 1:
            break
        time.sleep(0.25)
    if first <= 1:
        c.history.record("finding", what="retention_kept_all", node="a",
                         status=a.status())
    w.pause_flag.clear()
    time.sleep(1)
    run.finish(c, ["a"])


SCENARIOS = {
    "crash_source": crash_source,
    "crash_line": crash_line,
    "pause": pause,
    "network": network,
    "storage": storage,
    "time": time_jump,
    "restore": restore,
    "retention": retention,
}
