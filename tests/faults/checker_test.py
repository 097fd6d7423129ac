#!/usr/bin/env python3
"""The checker catches every violation it promises to, when one is planted in a
clean history.

The recorded fixture, testdata/clean_history.jsonl, is a short crash_source run
(tests/faults/run): nodes a and b, one device (a, written at a), two SIGKILLs of
the source, tails at both nodes, no snapshot. Three more clean histories are
built from it here, in the shape cluster.py and scenarios.py record (no other
run can be recorded for this test):

  two_devices      a second device, b, written at b: device a's records again
                   with the nodes' roles swapped (writer, acks, tails, dumps,
                   heads and the converged record all name both devices), as in
                   the scenarios with two sources;
  with_snapshots   replicas that compacted the start of the stream into a
                   snapshot (b up to 20, a up to 60: their dumps begin with a
                   `snapshot` record), and a resumed tail that begins with one;
  restored_source  a lose_data round of the restore scenario after the recorded
                   faults: the source wiped while its peer is down, both started
                   again, the source's writer continuing the stream at 91.

Each plant edits a history the way the violation would show in it, and the test
asserts the checker reports exactly the violation kinds listed with it: the
planted one, plus what the same fault necessarily shows elsewhere (a lost event
also leaves a gap in every replica and a tail delivery no replica holds). Every
clean history must come out clean. The common plants (class Plants) run on the
recorded history, on either device of the two-device one (where everything
reported must name the planted device, and the other device must stay clean)
and on the restored one; the restored one adds a seq acknowledged twice, the
snapshot one its own plants (lost events above and at the bases, snapshots
behind and in the middle of a tail).

  python3 tests/faults/checker_test.py [-v]
"""
import copy
import heapq
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import checker  # noqa: E402
from history import load  # noqa: E402

FIXTURE = os.path.join(HERE, "testdata", "clean_history.jsonl")
# Per-device figures that are not 0 when something is wrong with the device.
ERROR_FIGURES = ("lost", "reordered", "duplicated", "phantoms", "gaps", "divergent",
                 "tail_errors")


def kinds(records):
    return set(checker.check(records).violations)


def meta_of(records):
    return next(r for r in records if r["kind"] == "meta")


def tail_parts(tid):
    """'NODE/DEVICE/COUNT' (cluster.Tailer) -> (node, device, count)."""
    node, device, count = tid.split("/")
    return node, device, int(count)


class History:
    """A mutable copy of a history with the vocabulary of the plants; the plants
    touch `device` only (by default the first device of the meta record)."""

    def __init__(self, records, device=None):
        self.r = copy.deepcopy(records)
        self.device = device or meta_of(self.r)["devices"][0]

    def mine(self, r, *kinds):
        return r["kind"] in kinds and r.get("device") == self.device

    def dumps(self, node=None):
        return [r for r in self.r if self.mine(r, "dump_event")
                and (node is None or r["node"] == node)]

    def nodes(self):
        return sorted({r["node"] for r in self.dumps()})

    def last(self):
        return max(r["seq"] for r in self.dumps())

    def acks(self):
        return [r for r in self.r if self.mine(r, "ack")]

    def acked_seqs(self):
        out = set()
        for r in self.acks():
            out.update(range(r["first"], r["last"] + 1))
        return out

    def index(self, pred):
        return next(i for i, r in enumerate(self.r) if pred(r))

    def drop(self, pred):
        self.r = [r for r in self.r if not pred(r)]

    def drop_dumped(self, seqs, node=None):
        self.drop(lambda r: self.mine(r, "dump_event") and r["seq"] in seqs
                  and (node is None or r["node"] == node))

    def add_dumped(self, seq, payload, time_us=1):
        """An extra event at the end of every replica's dump."""
        for node in self.nodes():
            i = max(i for i, r in enumerate(self.r)
                    if self.mine(r, "dump_event") and r["node"] == node)
            e = dict(self.r[i], seq=seq, payload=payload, time_us=time_us)
            self.r.insert(i + 1, e)

    def tails(self):
        """Tail ids with their deliveries, in start order."""
        out = {}
        for r in self.r:
            if self.mine(r, "tail_start"):
                out[r["tail"]] = []
            elif self.mine(r, "deliver"):
                out[r["tail"]].append(r)
        return out

    def tail_start(self, tid):
        return self.r[self.index(lambda r: r["kind"] == "tail_start" and r["tail"] == tid)]

    def resumed_tail(self):
        """(earlier, later) tail ids at one node where the later one resumed after
        the earlier delivered something, and the later delivers at least 3."""
        by_node = {}
        for tid, evs in self.tails().items():
            by_node.setdefault(tail_parts(tid)[0], []).append((tid, evs))
        for chain in by_node.values():
            for (a, ea), (b, eb) in zip(chain, chain[1:]):
                if ea and len(eb) >= 3:
                    return a, b
        raise AssertionError("the fixture has no resumed tail")


# --- Clean histories built from the recorded one --------------------------------

def two_devices(records):
    """The recorded run with a second device: device `src`'s records again, for
    the device named after the other node (devices are named after their source
    in every scenario), with the nodes' roles swapped: written by the writer of
    that node, tailed and dumped at both nodes, tail ids continuing the run's
    count. Every heads record reports both devices (a node's head of the new
    device is the swapped node's last reported head of `src`), the converged
    record both lasts. The fault and process records stay the run's: the
    checker does not tie sessions or tails to them."""
    meta = meta_of(records)
    src = meta["devices"][0]
    nodes = meta["nodes"]
    assert len(nodes) == 2 and src in nodes, nodes
    new = next(n for n in nodes if n != src)
    swap = {src: new, new: src}
    ntails = sum(1 for r in records if r["kind"] == "tail_start")
    src_tails = {r["tail"] for r in records if r["kind"] == "tail_start"
                 and r["device"] == src}

    def tail_id(tid):
        node, _, count = tail_parts(tid)
        return f"{swap[node]}/{new}/{count + ntails}"

    orig, dup = [], []
    latest = {}  # node -> its last reported head of src
    for r in records:
        r = copy.deepcopy(r)
        orig.append(r)
        if r["kind"] == "meta":
            r["devices"] = [src, new]
        elif r["kind"] == "heads":
            r["heads"][new] = latest.get(swap[r["node"]], 0)
            if src in r["heads"]:
                latest[r["node"]] = r["heads"][src]
        elif r["kind"] == "converged":
            r["lasts"][new] = r["lasts"][src]
        if r.get("device") == src or (r["kind"] == "tail_end" and r["tail"] in src_tails):
            c = copy.deepcopy(r)
            if "device" in c:
                c["device"] = new
            if "node" in c:
                c["node"] = swap[c["node"]]
            if c.get("tail"):
                c["tail"] = tail_id(c["tail"])
            if c.get("w") == src:
                c["w"] = new
            if isinstance(c.get("payload"), dict) and c["payload"].get("w") == src:
                c["payload"] = dict(c["payload"], w=new)
            dup.append(c)
    return list(heapq.merge(orig, dup, key=lambda r: r["t"]))


def with_snapshots(records, bases=None, tail_snapshot=None):
    """The recorded run where replicas compacted the start of the stream: the
    dump of node n (`cairn tail DEVICE --json` from seq 1) begins with a
    `snapshot` record at bases[n] (cluster.dump_one) and holds the events above
    it only. `tail_snapshot`: (tail id, seq): that tail, resumed at a node that
    had compacted up to seq by then, begins with a `snapshot` record (the node
    sends the snapshot first when asked for compacted events; cluster.Tailer)
    and delivers from seq + 1. Default: b compacted up to 20 and a up to 60, and
    the first resumed tail at the source begins with a snapshot at the seq it
    asked from (30 in the recorded run: the source held 1..30 when it came back)."""
    h = History(records)
    if bases is None:
        bases = {"b": 20, "a": 60}
    if tail_snapshot is None:
        _, later = h.resumed_tail()
        tail_snapshot = (later, h.tail_start(later)["from"])
    tid, tseq = tail_snapshot
    out, begun = [], set()
    for r in h.r:
        if h.mine(r, "dump_event") and r["node"] in bases:
            node = r["node"]
            if r["seq"] <= bases[node]:
                continue
            if node not in begun:
                begun.add(node)
                out.append({"t": r["t"], "kind": "snapshot", "tail": None, "node": node,
                            "device": h.device, "seq": bases[node]})
        elif h.mine(r, "dump_end") and r["node"] in bases:
            r = dict(r, count=sum(1 for e in out if h.mine(e, "dump_event")
                                  and e["node"] == r["node"]))
        elif h.mine(r, "deliver") and r["tail"] == tid and r["seq"] <= tseq:
            continue
        out.append(r)
        if r["kind"] == "tail_start" and r["tail"] == tid:
            out.append({"t": r["t"], "kind": "snapshot", "tail": tid, "node": r["node"],
                        "device": h.device, "seq": tseq})
    return out


def restored_source(records, new=10):
    """The recorded run with one lose_data round of the restore scenario after
    its faults: the recorded stretch after the last fault, up to the `converged`
    record, reads as the round's quiesce. Then the source is SIGKILLed and its
    peer stopped (both tails end), the source's data directory wiped (fault
    lose_data), the source started first (its restore guard holds appends: its
    head of its device is 0), then the peer; the source catches its stream up
    from the peer, its writer's next session continues it with `new` events,
    delivered to both new tails. Then the run's ending, shifted in time: the
    "faults over" note, convergence, the tails stopped, the dumps holding the new
    events too."""
    h = History(records)
    dev = h.device
    nodes = meta_of(h.r)["nodes"]
    peer = next(n for n in nodes if n != dev)
    note = h.index(lambda r: r["kind"] == "note" and r["text"].startswith("faults over"))
    conv = max(i for i, r in enumerate(h.r) if r["kind"] == "converged")
    before = h.r[:note] + h.r[note + 1:conv + 1]
    after = h.r[conv + 1:]
    note = h.r[note]
    last = h.last()
    writes = [r for r in h.r if h.mine(r, "write")]
    w, session, n = writes[-1]["w"], writes[-1]["session"] + 1, writes[-1]["n1"] + 1
    time_us = max(r["time_us"] for r in h.dumps())
    chains = {}  # node -> its last tail id
    for tid in h.tails():
        chains[tail_parts(tid)[0]] = tid
    count = max(tail_parts(t)[2] for t in h.tails())
    peer_heads = next(r["heads"] for r in reversed(h.r)
                      if r["kind"] == "heads" and r["node"] == peer)

    t = before[-1]["t"]
    round_ = []

    def rec(kind, **fields):
        nonlocal t
        t = round(t + 0.05, 4)
        round_.append(dict({"t": t, "kind": kind}, **fields))

    rec("process", node=dev, event="exit", pid=90001, rc=-9, expected=True)
    rec("process", node=peer, event="exit", pid=90002, rc=0, expected=True)
    rec("fault", name="lose_data", node=dev, phase="start", detail="round 1: peers down")
    for node in sorted(chains):
        rec("tail_end", tail=chains[node], node=node, rc=1)
    rec("process", node=dev, event="start", pid=90003)
    rec("heads", node=dev, heads={dev: 0}, forks=0, peers={})
    rec("process", node=peer, event="start", pid=90004)
    rec("fault", name="lose_data", node=dev, phase="heal", detail=f"order {dev}{peer}")
    new_tails = {}
    for node in sorted(chains):
        count += 1
        new_tails[node] = f"{node}/{dev}/{count}"
        rec("tail_start", tail=new_tails[node], node=node, device=dev, **{"from": last + 1})
    rec("heads", node=peer, heads=dict(peer_heads, **{dev: last}), forks=0,
        peers={dev: "active"})
    rec("heads", node=dev, heads={dev: last}, forks=0, peers={peer: "active"})
    events = [{"seq": last + i, "time_us": time_us + 20_000 * i, "type": "fault.test",
               "payload": {"w": w, "n": n + i - 1}} for i in range(1, new + 1)]
    half = new // 2
    for part in (events[:half], events[half:]):
        rec("write", w=w, device=dev, session=session, n0=part[0]["payload"]["n"],
            n1=part[-1]["payload"]["n"])
    for part in (events[:half], events[half:]):
        rec("ack", w=w, device=dev, session=session, first=part[0]["seq"],
            last=part[-1]["seq"], n0=part[0]["payload"]["n"], n1=part[-1]["payload"]["n"])
        for node in sorted(new_tails):
            for e in part:
                rec("deliver", tail=new_tails[node], node=node, device=dev, **e)
    rec("note", text=note["text"])
    rec("session_end", w=w, device=dev, session=session, rc=0, unknown=[], stderr="")
    rec("heads", node=peer, heads=dict(peer_heads, **{dev: last + new}), forks=0,
        peers={dev: "active"})
    rec("heads", node=dev, heads={dev: last + new}, forks=0, peers={peer: "active"})
    rec("converged", seconds=0.1, lasts={dev: last + new})

    shift = round(t + 0.05 - after[0]["t"], 4)
    out = before + round_
    for r in after:
        r = dict(r, t=round(r["t"] + shift, 4))
        if r["kind"] == "heads" and r["heads"].get(dev) == last:
            r["heads"] = dict(r["heads"], **{dev: last + new})
        elif r["kind"] == "tail_end" and r["tail"] in chains.values():
            r["tail"] = new_tails[r["node"]]
        elif h.mine(r, "dump_end"):
            r["count"] += new
        out.append(r)
        if h.mine(r, "dump_event") and r["seq"] == last:
            out += [dict(r, **e) for e in events]
    return out


# --- The plants ----------------------------------------------------------------

class Plants:
    """Plants for any clean history with one device or more; a subclass says which
    history (fixture()) and which device the plants touch (device)."""

    device = None

    @classmethod
    def fixture(cls, records):
        return records

    @classmethod
    def setUpClass(cls):
        cls.clean = cls.fixture(load(FIXTURE))

    def setUp(self):
        self.h = History(self.clean, self.device)

    def assertReports(self, expected):
        rep = checker.check(self.h.r)
        self.assertEqual(set(rep.violations), set(expected),
                         json.dumps(rep.to_json()["violations"], indent=1)[:3000])
        for kind, details in rep.violations.items():
            for d in details:
                if "device" in d:
                    self.assertEqual(d["device"], self.h.device, (kind, d))
        for d, stats in rep.devices.items():
            if d != self.h.device:
                self.assertEqual({f: stats.get(f, 0) for f in ERROR_FIGURES},
                                 dict.fromkeys(ERROR_FIGURES, 0), d)
                self.assertEqual(stats["replicas_converged"], stats["replicas"], d)
        return rep

    def test_fixture_is_rich_enough(self):
        h = self.h
        self.assertGreaterEqual(len(h.nodes()), 2)
        self.assertGreater(len(h.acked_seqs()), 50)
        self.assertTrue(any(r["kind"] == "fault" for r in h.r))
        h.resumed_tail()

    def test_clean_history_is_clean(self):
        rep = self.assertReports(set())
        self.assertIsNotNone(rep.figures["convergence_s"])

    # A run that proves nothing.

    def test_a_run_without_acknowledgements_proves_nothing(self):
        """No append acknowledged (on any device): every written payload's
        outcome is unknown."""
        self.h.drop(lambda r: r["kind"] == "ack")
        for r in self.h.r:
            if r["kind"] == "session_end":
                ns = [(w["n0"], w["n1"]) for w in self.h.r if w["kind"] == "write"
                      and (w["w"], w["session"]) == (r["w"], r["session"])]
                r["unknown"] = [[min(n for n, _ in ns), max(n for _, n in ns)]] if ns else []
        self.assertReports({"nothing_acknowledged"})

    def test_a_run_without_deliveries_proves_nothing(self):
        """No tail delivered anything: each restarted tail asks from 1 again."""
        self.h.drop(lambda r: r["kind"] == "deliver")
        for r in self.h.r:
            if r["kind"] == "tail_start":
                r["from"] = 1
        self.assertReports({"nothing_delivered"})

    def test_a_run_without_faults_proves_nothing(self):
        self.h.drop(lambda r: r["kind"] == "fault")
        self.assertReports({"no_fault_injected"})

    def test_empty_history(self):
        """The harness failed after starting the daemons, before the run began:
        no meta record, no device, only the daemons' starts and the error."""
        i = self.h.index(lambda r: r["kind"] == "meta")
        self.h.r = self.h.r[:i] + [{"t": self.h.r[i]["t"], "kind": "note",
                                    "text": "harness error: RuntimeError('b not ready')"}]
        self.assertReports({"empty_history"})

    # The harness's own records.

    def test_harness_rewrote_payload(self):
        """The writer sends an acknowledged payload again in the session the node
        died under (its counter went back): not acknowledged, not stored."""
        h = self.h
        stored = {checker.key_of(r["payload"]) for r in h.dumps()}
        i = max(i for i, r in enumerate(h.r) if h.mine(r, "write")
                and (r["w"], r["n1"]) not in stored)
        again = h.acks()[0]
        h.r.insert(i + 1, dict(h.r[i], n0=again["n0"], n1=again["n0"]))
        rep = self.assertReports({"harness_rewrote_payload"})
        self.assertEqual(rep.violations["harness_rewrote_payload"][0]["n"], again["n0"])

    def test_ack_malformed(self):
        """An ack whose payload range is one shorter than its seq range."""
        a = next(r for r in self.h.acks() if r["last"] > r["first"])
        a["n1"] -= 1
        self.assertReports({"ack_malformed"})

    def test_ack_of_unwritten(self):
        """An ack names one seq more than the harness had written payloads when
        it came: it claims the next payload before the writer sent it. The final
        stream does hold that payload at that seq, so nothing else shows."""
        h = self.h
        at = {r["seq"]: checker.key_of(r["payload"]) for r in h.dumps()}
        written_at = {}
        for i, r in enumerate(h.r):
            if h.mine(r, "write"):
                for n in range(r["n0"], r["n1"] + 1):
                    written_at.setdefault((r["w"], n), i)
        a = next(r for i, r in enumerate(h.r) if h.mine(r, "ack")
                 and at.get(r["last"] + 1) == (r["w"], r["n1"] + 1)
                 and written_at.get((r["w"], r["n1"] + 1), -1) > i)
        a["last"] += 1
        a["n1"] += 1
        rep = self.assertReports({"ack_of_unwritten"})
        self.assertEqual(rep.violations["ack_of_unwritten"][0]["seq"], a["last"])

    def test_dump_failed(self):
        """The dump of one replica read every event, then `cairn tail` exited 1
        (the node closed the connection before its final reply)."""
        end = next(r for r in self.h.r if self.h.mine(r, "dump_end")
                   and r["node"] == self.h.nodes()[-1])
        end["rc"] = 1
        end["stderr"] = "cairn: the node went away: Connection reset by peer"
        self.assertReports({"dump_failed"})

    def test_replica_not_dumped(self):
        """The harness never dumped one node's replica: its tails are checked
        against the other replicas, its heads not at all."""
        node = self.h.nodes()[-1]
        self.h.drop(lambda r: self.h.mine(r, "dump_event", "dump_end") and r["node"] == node)
        rep = self.assertReports({"replica_not_dumped"})
        self.assertEqual(rep.violations["replica_not_dumped"],
                         [{"device": self.h.device, "node": node}])

    def test_fork_reported(self):
        """`cairn status` at one node counts a fork."""
        heads = [r for r in self.h.r if r["kind"] == "heads"]
        heads[len(heads) // 2]["forks"] = 1
        self.assertReports({"fork_reported"})

    def test_findings_are_reported_as_their_kind(self):
        """A scenario's own check that failed ("finding" records: cluster.py,
        scenarios.py, run.py) is reported under its `what`, with its fields."""
        dev, t = self.h.device, self.h.r[-1]["t"]
        findings = [
            {"what": "append_refused", "w": dev, "device": dev, "session": 9,
             "stderr": f"cairn: append to {dev} refused: guarded"},
            {"what": "damage_not_detected", "node": "b", "file": "000005.ldb",
             "offset": 700, "rc": None},
            {"what": "damage_message_unclear", "node": "b", "rc": 1, "said": "open failed"},
            {"what": "guard_released_alone", "node": dev, "status": {"devices": []}},
            {"what": "tail_stalled", "node": "b", "device": dev, "next_from": 80,
             "head": 90},
        ]
        for f in findings:
            with self.subTest(what=f["what"]):
                self.setUp()
                self.h.r.append(dict({"t": t, "kind": "finding"}, **f))
                rep = self.assertReports({f["what"]})
                self.assertEqual(rep.violations[f["what"]],
                                 [dict({"t": t}, **{k: v for k, v in f.items()
                                                    if k != "what"})])

    # The replicas.

    def test_lost_prefix(self):
        self.h.drop_dumped({1, 2, 3})
        rep = self.assertReports({"lost_prefix", "gap", "tail_not_in_replicas"})
        self.assertEqual(len(rep.violations["lost_prefix"]), 3)

    def test_lost_middle(self):
        k = self.h.last() // 2
        self.h.drop_dumped({k})
        rep = self.assertReports({"lost_middle", "gap", "tail_not_in_replicas"})
        self.assertEqual([v["seq"] for v in rep.violations["lost_middle"]], [k])

    def test_lost_tail(self):
        """Acknowledged, then gone from every replica: also a head a node had
        reported that it no longer holds, and tail deliveries beyond the replicas."""
        last, top = self.h.last(), max(self.h.acked_seqs())
        self.h.drop_dumped(set(range(top - 1, last + 1)))
        rep = self.assertReports({"lost_tail", "head_lost", "tail_beyond_replicas"})
        self.assertEqual(sorted(v["seq"] for v in rep.violations["lost_tail"]),
                         [top - 1, top])

    def test_lost_tail_nobody_saw(self):
        """The same loss when no tail delivered it and no head showed it."""
        h, top = self.h, max(self.h.acked_seqs())
        h.drop(lambda r: h.mine(r, "dump_event", "deliver") and r["seq"] >= top)
        for r in h.r:
            if r["kind"] == "heads" and r["heads"].get(h.device, 0) >= top:
                r["heads"][h.device] = top - 1
            if h.mine(r, "tail_start") and r["from"] > top:
                r["from"] = top
        rep = self.assertReports({"lost_tail"})
        self.assertEqual([v["seq"] for v in rep.violations["lost_tail"]], [top])

    def test_phantom(self):
        self.h.add_dumped(self.h.last() + 1, {"w": "nobody", "n": 1})
        rep = self.assertReports({"phantom"})
        self.assertEqual(len(rep.violations["phantom"]), len(self.h.nodes()))

    def test_duplicate(self):
        first = next(r for r in self.h.dumps() if r["seq"] == 5)
        self.h.add_dumped(self.h.last() + 1, first["payload"])
        self.assertReports({"duplicate"})

    def test_reorder(self):
        """Two acknowledged events swapped in every replica and every tail."""
        k = self.h.last() // 2
        by_seq = {}
        for r in self.h.r:
            if self.h.mine(r, "dump_event", "deliver") and r["seq"] in (k, k + 1):
                by_seq.setdefault(r.get("tail") or r["node"], {})[r["seq"]] = r
        for pair in by_seq.values():
            a, b = pair[k], pair[k + 1]
            for f in ("payload", "time_us"):
                a[f], b[f] = b[f], a[f]
        rep = self.assertReports({"reordered"})
        self.assertEqual(len(rep.violations["reordered"]), 2)

    def test_divergence_between_replicas(self):
        """One replica holds (and delivered to its tail) another event at one seq."""
        node = self.h.nodes()[-1]
        k = self.h.last() // 3
        for r in self.h.r:
            if (self.h.mine(r, "dump_event", "deliver") and r["node"] == node
                    and r["seq"] == k):
                r["time_us"] += 1
        rep = self.assertReports({"divergence"})
        self.assertEqual([v["seq"] for v in rep.violations["divergence"]], [k])

    def test_dump_repeats_an_event(self):
        """One replica's dump prints an event twice in a row."""
        e = self.h.dumps(self.h.nodes()[-1])[self.h.last() // 2]
        self.h.r.insert(self.h.r.index(e) + 1, dict(e))
        rep = self.assertReports({"seq_out_of_order"})
        self.assertEqual(rep.violations["seq_out_of_order"][0]["got"], e["seq"])

    def test_dump_out_of_order(self):
        """One replica's dump prints two events in the wrong order: the later one
        first (a gap), then the earlier one (out of order)."""
        evs = self.h.dumps(self.h.nodes()[-1])
        k = len(evs) // 2
        i, j = self.h.r.index(evs[k]), self.h.r.index(evs[k + 1])
        self.h.r[i], self.h.r[j] = self.h.r[j], self.h.r[i]
        self.assertReports({"gap", "seq_out_of_order"})

    def test_no_convergence(self):
        """One replica stops short (and reports only what it holds)."""
        h = self.h
        node = h.nodes()[-1]
        last = h.last()
        h.drop(lambda r: h.mine(r, "dump_event", "deliver") and r["node"] == node
               and r["seq"] > last - 5)
        for r in h.r:
            if h.mine(r, "tail_start") and r["node"] == node and r["from"] > last - 4:
                r["from"] = last - 4
        for r in h.r:
            if r["kind"] == "heads" and r["node"] == node:
                r["heads"][h.device] = min(r["heads"].get(h.device, 0), last - 5)
        rep = self.assertReports({"not_converged"})
        self.assertIsNone(rep.figures["convergence_s"])

    # The tails.

    def test_tail_skip(self):
        _, later = self.h.resumed_tail()
        gone = self.h.tails()[later][1]
        self.h.drop(lambda r: r is gone)
        rep = self.assertReports({"tail_skip"})
        self.assertEqual(rep.violations["tail_skip"][0]["seqs"], [gone["seq"]] * 2)

    def test_tail_duplicate(self):
        _, later = self.h.resumed_tail()
        again = self.h.tails()[later][1]
        self.h.r.insert(self.h.r.index(again) + 1, dict(again))
        self.assertReports({"tail_duplicate"})

    def test_tail_reorder(self):
        _, later = self.h.resumed_tail()
        a, b = self.h.tails()[later][:2]
        a["seq"], b["seq"] = b["seq"], a["seq"]
        a["payload"], b["payload"] = b["payload"], a["payload"]
        a["time_us"], b["time_us"] = b["time_us"], a["time_us"]
        self.assertReports({"tail_reorder"})

    def test_tail_resumes_too_late(self):
        """A restarted tail asks from two seqs after where the previous one ended."""
        _, later = self.h.resumed_tail()
        start = self.h.tail_start(later)
        skipped = {e["seq"] for e in self.h.tails()[later][:2]}
        start["from"] += 2
        self.h.drop(lambda r: r["kind"] == "deliver" and r["tail"] == later
                    and r["seq"] in skipped)
        self.assertReports({"tail_resume"})

    def test_tail_resumes_too_early(self):
        """A restarted tail asks from a seq already delivered, and gets it again."""
        earlier, later = self.h.resumed_tail()
        start = self.h.tail_start(later)
        prev = self.h.tails()[earlier][-1]
        start["from"] -= 1
        self.h.r.insert(self.h.r.index(start) + 1, dict(prev, tail=later))
        self.assertReports({"tail_resume", "tail_duplicate"})

    def test_tail_phantom(self):
        """A tail delivers, at one seq, an event nobody wrote; the replicas hold
        the real one there, so the delivery is also the wrong event."""
        _, later = self.h.resumed_tail()
        e = self.h.tails()[later][1]
        e["payload"] = {"w": "nobody", "n": 1}
        rep = self.assertReports({"tail_phantom", "tail_wrong_event"})
        self.assertEqual([v["seq"] for v in rep.violations["tail_phantom"]], [e["seq"]])

    def test_tail_wrong_event(self):
        """A tail delivers a written event at its seq, but not as its node
        stores it (another time)."""
        _, later = self.h.resumed_tail()
        e = self.h.tails()[later][1]
        e["time_us"] += 1
        rep = self.assertReports({"tail_wrong_event"})
        self.assertEqual([v["seq"] for v in rep.violations["tail_wrong_event"]], [e["seq"]])

    # The daemons.

    def test_daemon_crash_and_sanitizer_report(self):
        self.h.r.append({"t": 1e9, "kind": "process", "node": "a", "event": "exit",
                         "pid": 1, "rc": -6, "expected": False})
        self.h.r.append({"t": 1e9, "kind": "sanitizer", "node": "a",
                         "line": "ERROR: AddressSanitizer: heap-use-after-free"})
        self.assertReports({"daemon_exited", "sanitizer_report"})


class RecordedRun(Plants, unittest.TestCase):
    """The recorded history: one device, no snapshot."""


class TwoDevicesPlantInFirst(Plants, unittest.TestCase):
    """Two devices; the plants touch the recorded one (a), b must stay clean."""

    device = "a"

    @classmethod
    def fixture(cls, records):
        return two_devices(records)

    def test_both_devices_are_checked(self):
        rep = checker.check(self.h.r)
        self.assertEqual(sorted(rep.devices), ["a", "b"])
        for d, stats in rep.devices.items():
            self.assertGreater(stats["acknowledged"], 50, d)
            self.assertGreater(stats["delivered"], 100, d)
            self.assertEqual(stats["replicas_converged"], 2, d)
        self.assertEqual(rep.devices["a"], rep.devices["b"])


class TwoDevicesPlantInSecond(TwoDevicesPlantInFirst):
    """Two devices; the plants touch the built one (b), a must stay clean."""

    device = "b"


class RestoredSource(Plants, unittest.TestCase):
    """The recorded run with a restore round: the wiped source continued its
    stream after its peer reported its head."""

    @classmethod
    def fixture(cls, records):
        return restored_source(records)

    def acked_after_wipe(self):
        wipe = self.h.index(lambda r: r["kind"] == "fault" and r["name"] == "lose_data")
        return [r for r in self.h.r[wipe:] if self.h.mine(r, "ack")]

    def test_the_stream_goes_on_after_the_wipe(self):
        """The recorded stream ends at 90; the source's writer goes on at 91."""
        seqs = set()
        for a in self.acked_after_wipe():
            seqs.update(range(a["first"], a["last"] + 1))
        self.assertEqual(seqs, set(range(91, 101)))
        self.assertEqual(self.h.last(), 100)

    def test_seq_acked_twice(self):
        """The restore guard lets the writer in too early: the wiped source
        issues seqs 1.. again and acknowledges them. Its peer then gives the
        source its old stream back and the re-issued events are dropped: every
        replica holds the old stream (to 90), no tail delivers a new event, no
        head goes past 90. The acknowledged events are then lost, at seqs held by
        other events (lost_middle): an acked seq held by another event is lost,
        reordered or divergent, whatever the outcome."""
        h = self.h
        acks = self.acked_after_wipe()
        old = min(a["first"] for a in acks) - 1  # the stream's last seq before the wipe
        top = h.last()
        for a in acks:
            a["first"] -= old
            a["last"] -= old
        h.drop(lambda r: h.mine(r, "dump_event", "deliver") and r["seq"] > old)
        for r in h.r:
            if r["kind"] == "heads" and r["heads"].get(h.device, 0) > old:
                r["heads"][h.device] = old
            elif r["kind"] == "converged":
                r["lasts"][h.device] = min(r["lasts"][h.device], old)
            elif h.mine(r, "dump_end"):
                r["count"] = old
        rep = self.assertReports({"seq_acked_twice", "lost_middle"})
        self.assertEqual(sorted(v["seq"] for v in rep.violations["seq_acked_twice"]),
                         list(range(1, top - old + 1)))
        self.assertEqual(sorted(v["seq"] for v in rep.violations["lost_middle"]),
                         list(range(1, top - old + 1)))


class Snapshots(unittest.TestCase):
    """Replicas compacted up to 20 (b) and 60 (a); the source's resumed tail
    begins with a snapshot at 30, where it asked from."""

    @classmethod
    def setUpClass(cls):
        cls.clean = with_snapshots(load(FIXTURE))

    def setUp(self):
        self.h = History(self.clean)

    def assertReports(self, expected):
        rep = checker.check(self.h.r)
        self.assertEqual(set(rep.violations), set(expected),
                         json.dumps(rep.to_json()["violations"], indent=1)[:3000])
        return rep

    def snapshots(self, tail=None):
        return {r["node"]: r["seq"] for r in self.h.r if r["kind"] == "snapshot"
                and r["tail"] == tail}

    def test_clean_history_is_clean(self):
        """Acknowledged events at or below every replica's base (1..20) are in no
        dump; tails delivered them (and 21..60 at a) before the compaction."""
        h = self.h
        self.assertEqual(self.snapshots(), {"a": 60, "b": 20})
        _, later = h.resumed_tail()
        self.assertEqual(self.snapshots(later), {"a": 30})
        self.assertEqual(min(r["seq"] for r in h.dumps()), 21)
        self.assertTrue(set(range(1, 21)) <= h.acked_seqs())
        delivered = {r["seq"] for r in h.r if r["kind"] == "deliver"}
        self.assertTrue(set(range(1, 61)) <= delivered)
        rep = self.assertReports(set())
        self.assertEqual(rep.devices[h.device]["lost"], 0)
        self.assertEqual(rep.devices[h.device]["final_last"], 90)
        self.assertIsNotNone(rep.figures["convergence_s"])

    def test_lost_just_above_the_base(self):
        """Seq 21, just above the lowest base, is gone from the only replica
        that holds it (b: a compacted it): lost before the first held seq, a gap
        in b's dump, and the tails of both nodes delivered it."""
        self.h.drop_dumped({21})
        rep = self.assertReports({"lost_prefix", "gap", "tail_not_in_replicas"})
        self.assertEqual([v["seq"] for v in rep.violations["lost_prefix"]], [21])
        self.assertEqual(sorted((v["tail"], v["seq"])
                                for v in rep.violations["tail_not_in_replicas"]),
                         [("a/a/1", 21), ("b/a/2", 21)])

    def test_lost_where_one_replica_compacted_it(self):
        """Seq 45, compacted at a, is gone from b: lost (middle) all the same."""
        self.h.drop_dumped({45}, node="b")
        rep = self.assertReports({"lost_middle", "gap", "tail_not_in_replicas"})
        self.assertEqual([v["seq"] for v in rep.violations["lost_middle"]], [45])

    def test_lost_at_or_below_every_base_is_not_reported(self):
        """Events compacted at every replica: b compacts up to 20 more, yet
        nothing is lost (nor are the deliveries of 21..40 checked any more)."""
        for r in self.h.r:
            if r["kind"] == "snapshot" and r["tail"] is None and r["node"] == "b":
                r["seq"] = 40
        self.h.drop_dumped(set(range(21, 41)), node="b")
        rep = self.assertReports(set())
        self.assertEqual(rep.devices[self.h.device]["lost"], 0)

    def test_tail_snapshot_mid_stream(self):
        """A live tail gets a snapshot after it delivered events, and goes on
        after it: the events between the last delivery and the snapshot are
        never delivered (a skip)."""
        h = self.h
        evs = h.tails()["b/a/2"]
        k = next(i for i, e in enumerate(evs) if e["seq"] == 50)
        snap = {"t": evs[k]["t"], "kind": "snapshot", "tail": "b/a/2", "node": "b",
                "device": h.device, "seq": 55}
        h.r.insert(h.r.index(evs[k]) + 1, snap)
        h.drop(lambda r: r["kind"] == "deliver" and r["tail"] == "b/a/2"
               and 50 < r["seq"] <= 55)
        rep = self.assertReports({"tail_snapshot_mid_stream", "tail_skip"})
        self.assertEqual(rep.violations["tail_skip"][0]["seqs"], [51, 55])

    def test_tail_snapshot_behind(self):
        """A resumed tail that asked from 30 gets an older snapshot (25) and the
        events after it, so it delivers 26..29 a second time."""
        h = self.h
        earlier, later = h.resumed_tail()
        start = h.tail_start(later)
        snap = next(r for r in h.r if r["kind"] == "snapshot" and r["tail"] == later)
        snap["seq"] = 25
        again = [dict(r, tail=later, node=start["node"]) for r in h.tails()["b/a/2"]
                 if 25 < r["seq"] <= start["from"]]
        i = h.r.index(snap) + 1
        h.r[i:i] = again
        rep = self.assertReports({"tail_snapshot_behind", "tail_duplicate"})
        self.assertEqual(rep.violations["tail_snapshot_behind"],
                         [{"device": h.device, "tail": later, "snapshot": 25,
                           "asked_from": 30}])
        self.assertEqual(sorted(v["seq"] for v in rep.violations["tail_duplicate"]),
                         [26, 27, 28, 29])


if __name__ == "__main__":
    unittest.main()
