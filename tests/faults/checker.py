#!/usr/bin/env python3
"""Checks a fault run's history (see history.py) against Cairn's promises.

  checker.py HISTORY [--json REPORT.json] [--quiet]

Per device: every replica's seqs are contiguous from its base (0 or a snapshot);
every replica holds the same content at every seq (so each is a prefix of the
longest); every acknowledged event is in the final stream at the seq its ack named
(else: lost prefix, middle or tail); no event nobody wrote (phantom); no payload at
two seqs (duplicate), including events whose append outcome was unknown; no seq
acknowledged twice; every `cairn tail --follow` delivery in order, starting where
it was asked to, without a skip, and equal to the final stream (an event its node
has since compacted is compared with the replicas that still hold it, and with
nothing once all compacted it); every replica converged at the end. Also: no
daemon exited unasked, no sanitizer report, no fork reported by `cairn status`,
and no head reported that the node no longer holds at the end (unless its storage
was damaged on purpose). A history in which nothing was acknowledged, nothing
delivered to a tail or no fault injected is itself a violation: such a run proves
nothing.

Prints a report and exits 1 when any violation is found, 0 otherwise.
"""
import argparse
import json
import sys
from collections import defaultdict

sys.path.insert(0, __import__("os").path.dirname(__file__))
from history import load  # noqa: E402

STORAGE_FAULTS = {"lose_tail", "lose_data", "bitflip"}
MAX_DETAILS = 20


class Report:
    def __init__(self):
        self.violations = defaultdict(list)  # kind -> [detail dicts]
        self.figures = {}
        self.devices = {}

    def add(self, kind, **detail):
        self.violations[kind].append(detail)

    def ok(self):
        return not self.violations

    def to_json(self):
        return {
            "ok": self.ok(),
            "violations": {k: {"count": len(v), "first": v[:MAX_DETAILS]}
                           for k, v in sorted(self.violations.items())},
            "figures": self.figures,
            "devices": self.devices,
        }

    def text(self):
        f = self.figures
        out = [f"history: {f.get('scenario', '?')}  "
               f"faults injected {f.get('faults_injected', 0)}"
               f"  ({', '.join(f'{k} {v}' for k, v in sorted(f.get('faults_by_name', {}).items()))})"]
        for d, s in sorted(self.devices.items()):
            s = defaultdict(int, s)
            out.append(
                f"device {d}: written {s['written']}, acknowledged {s['acknowledged']}, "
                f"unknown {s['unknown']} ({s['unknown_present']} present), final last "
                f"{s['final_last']}; lost {s['lost']} (prefix {s['lost_prefix']}, middle "
                f"{s['lost_middle']}, tail {s['lost_tail']}), reordered {s['reordered']}, "
                f"duplicated {s['duplicated']}, "
                f"phantoms {s['phantoms']}, gaps {s['gaps']}, divergent seqs "
                f"{s['divergent']}, tail deliveries {s['delivered']} "
                f"({s['tail_errors']} wrong), replicas converged "
                f"{s['replicas_converged']}/{s['replicas']}")
        conv = f.get("convergence_s")
        out.append("convergence after the last fault: " +
                   (f"{conv:.2f} s" if conv is not None else "not measured"))
        if self.ok():
            out.append("RESULT: ok, no violation")
        else:
            out.append("RESULT: VIOLATIONS")
            for k, v in sorted(self.violations.items()):
                out.append(f"  {k}: {len(v)}")
                for d in v[:5]:
                    out.append("    " + json.dumps(d, sort_keys=True))
        return "\n".join(out)


def key_of(p):
    """The identity of a payload written by the harness, or None for anything else."""
    if isinstance(p, dict) and set(p) == {"w", "n"} and isinstance(p["n"], int):
        return (str(p["w"]), p["n"])
    return None


def content(e):
    return (e.get("type"), json.dumps(e.get("payload"), sort_keys=True), e.get("time_us"))


class Device:
    def __init__(self, name):
        self.name = name
        self.written = {}      # key -> session
        self.acked = {}        # key -> seq
        self.acked_seq = {}    # seq -> key
        self.unknown = set()   # keys
        self.dumps = {}        # node -> {"base", "events": [..], "rc"}
        self.tails = {}        # tail id -> {"node", "from", "events": [], "snapshot"}
        self.tail_order = defaultdict(list)  # node -> [tail ids, in start order]


def parse(records, rep):
    devices = {}
    writer_device = {}
    dev = lambda d: devices.setdefault(d, Device(d))
    meta = {}
    faults, heals, storage_faults = [], [], defaultdict(list)
    heads = []
    for r in records:
        k = r["kind"]
        if k == "meta":
            meta = r
            for d in r.get("devices", []):
                dev(d)
        elif k == "write":
            writer_device[r["w"]] = r["device"]
            D = dev(r["device"])
            for n in range(r["n0"], r["n1"] + 1):
                if (r["w"], n) in D.written:
                    rep.add("harness_rewrote_payload", device=r["device"], w=r["w"], n=n)
                D.written[(r["w"], n)] = r["session"]
        elif k == "ack":
            D = dev(r["device"])
            if r["last"] - r["first"] != r["n1"] - r["n0"]:
                rep.add("ack_malformed", device=r["device"], ack=r)
            for i in range(r["last"] - r["first"] + 1):
                key, seq = (r["w"], r["n0"] + i), r["first"] + i
                if key not in D.written:
                    rep.add("ack_of_unwritten", device=r["device"], seq=seq, key=list(key))
                if seq in D.acked_seq and D.acked_seq[seq] != key:
                    rep.add("seq_acked_twice", device=r["device"], seq=seq,
                            first=list(D.acked_seq[seq]), second=list(key))
                D.acked_seq[seq] = key
                D.acked[key] = seq
        elif k == "session_end":
            D = dev(r["device"])
            for n0, n1 in r["unknown"]:
                for n in range(n0, n1 + 1):
                    D.unknown.add((r["w"], n))
        elif k == "tail_start":
            D = dev(r["device"])
            D.tails[r["tail"]] = {"node": r["node"], "from": r["from"], "events": [],
                                  "snapshot": None}
            D.tail_order[r["node"]].append(r["tail"])
        elif k == "deliver":
            D = dev(r["device"])
            D.tails[r["tail"]]["events"].append(r)
        elif k == "snapshot":
            D = dev(r["device"])
            if r.get("tail"):
                t = D.tails[r["tail"]]
                if not t["events"]:
                    t["snapshot"] = r["seq"]
                else:
                    rep.add("tail_snapshot_mid_stream", device=r["device"], tail=r["tail"],
                            seq=r["seq"])
            else:
                D.dumps.setdefault(r["node"], {"base": 0, "events": [], "rc": None})
                D.dumps[r["node"]]["base"] = r["seq"]
        elif k == "dump_event":
            D = dev(r["device"])
            D.dumps.setdefault(r["node"], {"base": 0, "events": [], "rc": None})
            D.dumps[r["node"]]["events"].append(r)
        elif k == "dump_end":
            D = dev(r["device"])
            D.dumps.setdefault(r["node"], {"base": 0, "events": [], "rc": None})
            D.dumps[r["node"]]["rc"] = r["rc"]
            if r["rc"] != 0:
                rep.add("dump_failed", device=r["device"], node=r["node"], rc=r["rc"],
                        stderr=r.get("stderr", ""))
        elif k == "heads":
            heads.append(r)
            if r.get("forks", 0) > 0:
                rep.add("fork_reported", node=r["node"], forks=r["forks"], t=r["t"])
        elif k == "fault":
            if r["phase"] == "start":
                faults.append(r)
                if r["name"] in STORAGE_FAULTS:
                    storage_faults[r["node"]].append(r["t"])
            else:
                heals.append(r)
        elif k == "process" and r["event"] == "exit" and not r["expected"]:
            rep.add("daemon_exited", node=r["node"], rc=r["rc"], t=r["t"])
        elif k == "sanitizer":
            rep.add("sanitizer_report", node=r["node"], line=r["line"])
        elif k == "finding":  # a scenario's own check failed (e.g. damage not detected)
            rep.add(r["what"], **{f: v for f, v in r.items() if f not in ("kind", "what")})
    # An unknown outcome is settled by the acks: only what no ack covered stays unknown.
    for D in devices.values():
        D.unknown -= set(D.acked)
    return meta, devices, writer_device, faults, heals, storage_faults, heads


def check_replicas(D, rep, stats):
    """Contiguity, one content per seq, no phantom, no duplicate; returns the
    canonical stream {seq: event} (the longest replica first)."""
    canonical, owner = {}, {}
    order = sorted(D.dumps.items(), key=lambda kv: -(kv[1]["events"][-1]["seq"]
                                                     if kv[1]["events"] else kv[1]["base"]))
    for node, dump in order:
        expect = dump["base"] + 1
        seen_keys = {}
        for e in dump["events"]:
            if e["seq"] != expect:
                what = "gap" if e["seq"] > expect else "seq_out_of_order"
                rep.add(what, device=D.name, node=node, expected=expect, got=e["seq"])
                stats["gaps"] += 1
            expect = e["seq"] + 1
            key = key_of(e["payload"])
            if key is None or key not in D.written:
                rep.add("phantom", device=D.name, node=node, seq=e["seq"],
                        payload=e["payload"])
                stats["phantoms"] += 1
            elif key in seen_keys and seen_keys[key] != e["seq"]:
                rep.add("duplicate", device=D.name, node=node, key=list(key),
                        seqs=[seen_keys[key], e["seq"]])
                stats["duplicated"] += 1
            if key is not None:
                seen_keys.setdefault(key, e["seq"])
            if e["seq"] in canonical:
                if content(canonical[e["seq"]]) != content(e):
                    rep.add("divergence", device=D.name, seq=e["seq"], node=node,
                            other=owner[e["seq"]], ours=e["payload"],
                            theirs=canonical[e["seq"]]["payload"])
                    stats["divergent"] += 1
            else:
                canonical[e["seq"]], owner[e["seq"]] = e, node
    return canonical


def check_acked(D, canonical, rep, stats):
    """Every acknowledged event at the seq its ack named. One held at another seq
    is reordered (not lost); one held nowhere is lost: before the first held seq
    (prefix), between held seqs (middle) or after the last (tail)."""
    base = min((d["base"] for d in D.dumps.values()), default=0)
    present = {}
    for seq, e in canonical.items():
        key = key_of(e["payload"])
        if key is not None:
            present.setdefault(key, seq)
    last = max(canonical, default=base)
    first_present = min(canonical, default=last + 1)
    lost = []
    for key, seq in sorted(D.acked.items(), key=lambda kv: kv[1]):
        if seq <= base:
            continue  # compacted into a snapshot at every replica
        at = canonical.get(seq)
        if at is not None and key_of(at["payload"]) == key:
            continue
        if key in present:
            rep.add("reordered", device=D.name, key=list(key), acked_seq=seq,
                    stored_seq=present[key])
            stats["reordered"] += 1
        else:
            lost.append(seq)
    for seq in lost:
        where = "tail" if seq > last else "prefix" if seq < first_present else "middle"
        stats["lost_" + where] += 1
        rep.add("lost_" + where, device=D.name, seq=seq, key=list(D.acked_seq[seq]))
    stats["lost"] = len(lost)
    stats["unknown_present"] = sum(1 for k in D.unknown if k in present)


def check_tails(D, canonical, rep, stats):
    """The tails at one node form one chain: each resumes right after the last seq
    the previous one delivered. Within the chain every seq is delivered once, in
    order: a seq delivered again is a duplicate, one that arrives after a later seq
    is reordered, one never delivered before a later seq is skipped. What a tail
    delivered must be what its node holds in the end; an event its node has since
    compacted into a snapshot (at or below the node's dump base) is compared with
    the replicas that still hold it, and with nothing once every replica compacted
    it."""
    last = max(canonical, default=0)
    compacted = min((d["base"] for d in D.dumps.values()), default=0)
    for node, tids in D.tail_order.items():
        dump = D.dumps.get(node)
        held = {e["seq"]: e for e in dump["events"]} if dump else canonical
        node_base = dump["base"] if dump else compacted
        prev_last = None
        delivered = {}  # seq -> key
        for tid in tids:
            t = D.tails[tid]
            if prev_last is not None and t["from"] != prev_last + 1:
                rep.add("tail_resume", device=D.name, tail=tid,
                        expected_from=prev_last + 1, got_from=t["from"])
            expect = t["from"]
            if t["snapshot"] is not None:
                if t["snapshot"] + 1 < t["from"]:
                    rep.add("tail_snapshot_behind", device=D.name, tail=tid,
                            snapshot=t["snapshot"], asked_from=t["from"])
                expect = t["snapshot"] + 1
            missing = set()
            for e in t["events"]:
                stats["delivered"] += 1
                seq, key = e["seq"], key_of(e["payload"])
                if seq in delivered:
                    rep.add("tail_duplicate", device=D.name, tail=tid, seq=seq)
                    stats["tail_errors"] += 1
                    expect = max(expect, seq + 1)
                    continue
                if seq in missing:
                    rep.add("tail_reorder", device=D.name, tail=tid, seq=seq,
                            after=expect - 1)
                    stats["tail_errors"] += 1
                    missing.discard(seq)
                elif seq < expect:
                    rep.add("tail_reorder", device=D.name, tail=tid, seq=seq,
                            after=expect - 1)
                    stats["tail_errors"] += 1
                else:
                    missing.update(range(expect, seq))
                    expect = seq + 1
                delivered[seq] = key
                if key is None or key not in D.written:
                    rep.add("tail_phantom", device=D.name, tail=tid, seq=seq,
                            payload=e["payload"])
                    stats["tail_errors"] += 1
                c = held.get(seq)
                if c is None and seq <= node_base:
                    c = canonical.get(seq)
                    if c is None and seq <= compacted:
                        continue  # in a snapshot at every replica: nothing to compare
                if c is None:
                    what = "tail_beyond_replicas" if seq > last else "tail_not_in_replicas"
                    rep.add(what, device=D.name, tail=tid, seq=seq)
                    stats["tail_errors"] += 1
                elif content(c) != content(e):
                    rep.add("tail_wrong_event", device=D.name, tail=tid, seq=seq,
                            delivered=e["payload"], stored=c["payload"])
                    stats["tail_errors"] += 1
            for run in runs(sorted(missing)):
                rep.add("tail_skip", device=D.name, tail=tid, seqs=run)
                stats["tail_errors"] += 1
            if t["events"]:
                prev_last = expect - 1
            elif t["snapshot"] is not None:
                prev_last = t["snapshot"]
            elif prev_last is None:
                prev_last = t["from"] - 1


def runs(seqs):
    """[1, 2, 3, 7] -> [[1, 3], [7, 7]]"""
    out = []
    for s in seqs:
        if out and out[-1][1] + 1 == s:
            out[-1][1] = s
        else:
            out.append([s, s])
    return out


def check_convergence(D, canonical, nodes, rep, stats):
    # A replica whose dump is only a snapshot (every event compacted) holds its base.
    last = max([max(canonical, default=0)] + [d["base"] for d in D.dumps.values()])
    stats["final_last"] = last
    stats["replicas"] = len(nodes)
    conv = 0
    for node in nodes:
        dump = D.dumps.get(node)
        if dump is None:
            rep.add("replica_not_dumped", device=D.name, node=node)
            continue
        got = dump["events"][-1]["seq"] if dump["events"] else dump["base"]
        if got != last:
            rep.add("not_converged", device=D.name, node=node, holds=got, longest=last)
        else:
            conv += 1
    stats["replicas_converged"] = conv


def check_heads(devices, heads, storage_faults, rep):
    """A head a node reported must still be there at the end (unless its storage
    was damaged on purpose after that report)."""
    for h in heads:
        for d, last in h["heads"].items():
            D = devices.get(d)
            if D is None or h["node"] not in D.dumps:
                continue
            dump = D.dumps[h["node"]]
            got = dump["events"][-1]["seq"] if dump["events"] else dump["base"]
            damaged_later = any(t > h["t"] for t in storage_faults.get(h["node"], []))
            if last > got and not damaged_later:
                rep.add("head_lost", device=d, node=h["node"], reported=last, holds=got,
                        t=h["t"])


def convergence_time(devices, heads, faults, heals, nodes):
    """Seconds from the last fault (its heal, else its start) until every node's
    polled head of every device equals the final stream's last seq."""
    marks = [r["t"] for r in heals] + [r["t"] for r in faults]
    if not marks:
        return None
    t_last = max(marks)
    finals = {d: max((e["seq"] for dump in D.dumps.values() for e in dump["events"]),
                     default=0) for d, D in devices.items()}
    reached = {}
    for h in heads:
        if h["t"] < t_last:
            continue
        ok = all(h["heads"].get(d, 0) == last for d, last in finals.items() if last)
        if ok:
            reached.setdefault(h["node"], h["t"])
        else:
            reached.pop(h["node"], None)  # not there yet after all
    if set(nodes) - set(reached):
        return None
    return round(max(reached.values()) - t_last, 3)


def check(records):
    rep = Report()
    meta, devices, writer_device, faults, heals, storage_faults, heads = parse(records, rep)
    nodes = meta.get("nodes") or sorted({n for D in devices.values() for n in D.dumps})
    for D in devices.values():
        stats = defaultdict(int)
        stats["written"] = len(D.written)
        stats["acknowledged"] = len(D.acked)
        stats["unknown"] = len(D.unknown)
        canonical = check_replicas(D, rep, stats)
        check_acked(D, canonical, rep, stats)
        check_tails(D, canonical, rep, stats)
        check_convergence(D, canonical, nodes, rep, stats)
        rep.devices[D.name] = dict(stats)
    check_heads(devices, heads, storage_faults, rep)
    by_name = defaultdict(int)
    for f in faults:
        by_name[f["name"]] += 1
    rep.figures = {
        "scenario": meta.get("scenario"),
        "params": meta.get("params"),
        "faults_injected": len(faults),
        "faults_by_name": dict(by_name),
        "convergence_s": convergence_time(devices, heads, faults, heals, nodes),
        "converged_wait_s": next((r["seconds"] for r in reversed(records)
                                  if r["kind"] == "converged"), None),
    }
    for name in ("written", "acknowledged", "unknown", "lost", "reordered", "duplicated",
                 "phantoms",
                 "gaps", "divergent", "delivered", "tail_errors"):
        rep.figures[name] = sum(s.get(name, 0) for s in rep.devices.values())
    if not devices:
        rep.add("empty_history", detail="no device in the history")
    # A run in which nothing happened proves nothing: each scenario must show
    # acknowledged appends, deliveries to its tails and the faults it injects.
    if devices and rep.figures["acknowledged"] == 0:
        rep.add("nothing_acknowledged", detail="no append was acknowledged")
    if devices and rep.figures["delivered"] == 0:
        rep.add("nothing_delivered", detail="no tail delivered an event")
    if devices and not faults:
        rep.add("no_fault_injected", detail="the history records no fault")
    return rep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("history")
    ap.add_argument("--json", help="write the report as JSON to this file")
    ap.add_argument("--quiet", action="store_true", help="print only the result line")
    a = ap.parse_args(argv)
    try:
        records = load(a.history)
    except (OSError, ValueError) as e:
        print(f"checker: {e}", file=sys.stderr)
        return 2
    rep = check(records)
    text = rep.text()
    print(text.splitlines()[-1] if a.quiet and rep.ok() else text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rep.to_json(), f, indent=1, sort_keys=True)
    return 0 if rep.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
