"""The peer benchmark's results: medians, min and max over runs, Cairn/peer ratios
paired run by run, the machine and the versions; as JSON and as Markdown."""
import os
import platform
import statistics
import subprocess
import tempfile

SYSTEMS = ("cairn", "jetstream", "redis")
NAMES = {"cairn": "Cairn", "jetstream": "JetStream", "redis": "Redis"}


def _get(d, *path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _cpu(res, case):
    servers = _get(res, case, "servers")
    return round(sum(s["cpu_s"] for s in servers.values()), 2) if servers else None


def _rss(res, case):
    servers = _get(res, case, "servers")
    return max(s["rss_mb"] for s in servers.values()) if servers else None


def _ms(res, *path):
    us = _get(res, *path)
    return None if us is None else us / 1000


# (key, label, value of one system's run, higher is better)
ROWS = [
    ("append_100_fast", "append 100 B, fast: events/s",
     lambda r: _get(r, "append_100_fast", "events_s"), True),
    ("append_100_durable", "append 100 B, durable: events/s",
     lambda r: _get(r, "append_100_durable", "events_s"), True),
    ("append_1024_fast", "append 1 KiB, fast: events/s",
     lambda r: _get(r, "append_1024_fast", "events_s"), True),
    ("append_1024_durable", "append 1 KiB, durable: events/s",
     lambda r: _get(r, "append_1024_durable", "events_s"), True),
    ("append_1024_fast_mb", "append 1 KiB, fast: MB/s",
     lambda r: _get(r, "append_1024_fast", "mb_s"), True),
    ("append_1024_durable_mb", "append 1 KiB, durable: MB/s",
     lambda r: _get(r, "append_1024_durable", "mb_s"), True),
    ("catchup", "catch-up of the 100 B stream: events/s",
     lambda r: _get(r, "catchup", "events_s"), True),
    ("catchup_s", "catch-up: seconds", lambda r: _get(r, "catchup", "seconds"), False),
    ("live_p50", "live one hop: p50 ms", lambda r: _ms(r, "live", "one_hop", "p50_us"), False),
    ("live_p99", "live one hop: p99 ms", lambda r: _ms(r, "live", "one_hop", "p99_us"), False),
    ("live_max", "live one hop: max ms", lambda r: _ms(r, "live", "one_hop", "max_us"), False),
    ("live2_p50", "live two hops: p50 ms", lambda r: _ms(r, "live", "two_hops", "p50_us"),
     False),
    ("live2_p99", "live two hops: p99 ms", lambda r: _ms(r, "live", "two_hops", "p99_us"),
     False),
    ("live2_max", "live two hops: max ms", lambda r: _ms(r, "live", "two_hops", "max_us"),
     False),
]
CASES = ["append_100_fast", "append_100_durable", "append_1024_fast", "append_1024_durable",
         "catchup", "live"]
for _c in CASES:
    ROWS.append((f"{_c}_cpu", f"{_c}: server CPU s", lambda r, c=_c: _cpu(r, c), False))
    ROWS.append((f"{_c}_rss", f"{_c}: server peak RSS MB", lambda r, c=_c: _rss(r, c), False))


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def summarize(runs):
    table = {}
    for key, label, get, higher in ROWS:
        row = {"label": label, "higher_is_better": higher}
        for s in SYSTEMS:
            row[s] = _stats([get(run[s]) for run in runs])
        for peer in ("jetstream", "redis"):
            pairs = [(get(run["cairn"]), get(run[peer])) for run in runs]
            row[f"cairn/{peer}"] = _stats([c / p for c, p in pairs if c is not None and p])
        table[key] = row
    return table


def _sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine(workdir_parent):
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    src = _sh("findmnt", "-no", "SOURCE,FSTYPE", "-T", workdir_parent)
    dev = src.split()[0] if src else ""
    rota = _sh("lsblk", "-dno", "ROTA", dev) if dev.startswith("/dev/") else ""
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "memory_gib": round(mem_kb / 2**20, 1),
            "disk": f"{src} ({'rotational' if rota == '1' else 'non-rotational' if rota == '0' else 'unknown'}) for {workdir_parent}"}


def versions(root):
    head = _sh("git", "-C", root, "rev-parse", "--short", "HEAD")
    dirty = _sh("git", "-C", root, "status", "--porcelain", "--", "src", "bin", "CMakeLists.txt")
    return {"cairn": head + (" + uncommitted changes in src/" if dirty else ""),
            "nats-server": _sh("nats-server", "--version"),
            "redis-server": _sh("redis-server", "--version").split(" sha=")[0],
            "libnats": _sh("pkg-config", "--modversion", "libnats"),
            "hiredis": _sh("pkg-config", "--modversion", "hiredis")}


def document(args, runs, sizes, started, js_sync_always):
    cmd = "tests/bench/peers/run" + (" --quick" if args.quick else "") + f" --runs {args.runs}"
    notes = [
        "fast: Cairn --sync-writes off, JetStream default, Redis appendfsync everysec; "
        "durable: Cairn --sync-writes on, Redis appendfsync always, JetStream "
        + ("sync_interval: always" if js_sync_always else
           "UNCHANGED: this nats-server has no sync_interval option (2.10 added it), so "
           "its durable figures are the fast set-up again, with no fsync per ack"),
        "Cairn append: batches of 1000 events (1 MiB at most) per control request, "
        "8 requests in flight; JetStream: js_PublishAsync, 4096 pending at most; "
        "Redis: XADD pipelined 1000 at a time, two batches in flight",
        "catch-up: Cairn a new cairnd (--sync-writes off) with --peer to the source, "
        "TLS 1.3 with mutual verification, chain and signatures checked, timed from "
        "its start until its last equals the source's (status polled every 10 ms); "
        "JetStream a new ordered consumer; Redis XREAD COUNT 10000 pages",
        "live: publisher waits for each ack; latency = receive wall time - send wall time "
        "carried in the payload; Cairn one hop = subscriber node B, two hops = C in a "
        "line A-B-C with peer exchange off; servers fast set-up",
        "server CPU s and peak RSS: all server processes of the workload (Cairn catch-up: "
        "source + new node; Cairn live: A+B+C), CPU summed, RSS the largest",
    ]
    loads = [r["load"][k][0] for r in runs for k in ("start", "end") if "load" in r]
    mach = machine(tempfile.gettempdir())
    mach["load_1min"] = {"min": min(loads), "max": max(loads)} if loads else None
    return {"date": started.isoformat(timespec="seconds"), "command": cmd,
            "machine": mach, "versions": versions(args.root),
            "sizes": sizes, "runs_count": len(runs), "notes": notes,
            "summary": _mark_unequal(summarize(runs), js_sync_always), "runs": runs}


def _mark_unequal(table, js_sync_always):
    """Without sync_interval, JetStream's durable rows are not at the same durability
    as the others': the label says so next to the figures and the ratio."""
    if not js_sync_always:
        for key, row in table.items():
            if "durable" in key:
                row["label"] += " [JetStream: no fsync per ack, see notes]"
    return table


def _fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _cell(st):
    if st is None:
        return "n/a"
    if st["n"] == 1:
        return _fmt(st["median"])
    return f"{_fmt(st['median'])} ({_fmt(st['min'])}–{_fmt(st['max'])})"


def _load_text(load):
    return "n/a" if not load else f"{load['min']:.2f}–{load['max']:.2f}"


def markdown(doc):
    m, v, z = doc["machine"], doc["versions"], doc["sizes"]
    out = [f"Peer benchmark, {doc['date']}, `{doc['command']}` "
           f"({doc['runs_count']} run(s); median (min–max); ratios Cairn/peer paired "
           f"within each run; sizes: {z['n100']:,} × 100 B, {z['n1k']:,} × 1 KiB, "
           f"live {z['live']:,} at {z['rate']:,}/s).",
           "",
           f"Machine: {m['nproc']} cores, {m['cpu']}, {m['memory_gib']} GiB, kernel "
           f"{m['kernel']}, disk {m['disk']}; 1-minute load average "
           f"{_load_text(m.get('load_1min'))} at the starts and ends of the runs.",
           f"Versions: Cairn {v['cairn']}; {v['nats-server']} with libnats {v['libnats']}; "
           f"{v['redis-server']} with hiredis {v['hiredis']}.",
           "",
           "| measure | Cairn | JetStream | Redis | Cairn/JetStream | Cairn/Redis |",
           "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for key, row in doc["summary"].items():
        better = "higher" if row["higher_is_better"] else "lower"
        out.append(f"| {row['label']} ({better} is better) | " + " | ".join(
            _cell(row[k]) for k in ("cairn", "jetstream", "redis", "cairn/jetstream",
                                    "cairn/redis")) + " |")
    out += ["", "Notes:"] + [f"- {n}" for n in doc["notes"]]
    return "\n".join(out) + "\n"
