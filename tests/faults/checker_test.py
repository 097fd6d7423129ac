#!/usr/bin/env python3
"""The checker catches every violation it promises to, when one is planted in a
clean recorded history (testdata/clean_history.jsonl: a short crash_source run,
two SIGKILLs of the source, tails at both nodes, recorded by tests/faults/run).

Each plant edits the history the way the violation would show in it, and the
test asserts the checker reports exactly the violation kinds listed with it: the
planted one, plus what the same fault necessarily shows elsewhere (a lost event
also leaves a gap in every replica and a tail delivery no replica holds). The
clean history must come out clean.

  python3 tests/faults/checker_test.py [-v]
"""
import copy
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import checker  # noqa: E402
from history import load  # noqa: E402

FIXTURE = os.path.join(HERE, "testdata", "clean_history.jsonl")


def kinds(records):
    return set(checker.check(records).violations)


class History:
    """A mutable copy of the fixture with the vocabulary of the plants."""

    def __init__(self, records):
        self.r = copy.deepcopy(records)
        self.device = next(r for r in self.r if r["kind"] == "meta")["devices"][0]

    def dumps(self, node=None):
        return [r for r in self.r if r["kind"] == "dump_event" and r["device"] == self.device
                and (node is None or r["node"] == node)]

    def nodes(self):
        return sorted({r["node"] for r in self.dumps()})

    def last(self):
        return max(r["seq"] for r in self.dumps())

    def acked_seqs(self):
        out = set()
        for r in self.r:
            if r["kind"] == "ack" and r["device"] == self.device:
                out.update(range(r["first"], r["last"] + 1))
        return out

    def drop(self, pred):
        self.r = [r for r in self.r if not pred(r)]

    def drop_dumped(self, seqs, node=None):
        self.drop(lambda r: r["kind"] == "dump_event" and r["device"] == self.device
                  and r["seq"] in seqs and (node is None or r["node"] == node))

    def add_dumped(self, seq, payload, time_us=1):
        """An extra event at the end of every replica's dump."""
        for node in self.nodes():
            i = max(i for i, r in enumerate(self.r)
                    if r["kind"] == "dump_event" and r["node"] == node
                    and r["device"] == self.device)
            e = dict(self.r[i], seq=seq, payload=payload, time_us=time_us)
            self.r.insert(i + 1, e)

    def tails(self):
        """Tail ids with their deliveries, in start order."""
        out = {}
        for r in self.r:
            if r["kind"] == "tail_start" and r["device"] == self.device:
                out[r["tail"]] = []
            elif r["kind"] == "deliver" and r["device"] == self.device:
                out[r["tail"]].append(r)
        return out

    def resumed_tail(self):
        """(earlier, later) tail ids at one node where the later one resumed after
        the earlier delivered something, and the later delivers at least 3."""
        by_node = {}
        for tid, evs in self.tails().items():
            by_node.setdefault(tid.split("/")[0], []).append((tid, evs))
        for chain in by_node.values():
            for (a, ea), (b, eb) in zip(chain, chain[1:]):
                if ea and len(eb) >= 3:
                    return a, b
        raise AssertionError("the fixture has no resumed tail")


class CheckerCatchesPlantedViolations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.clean = load(FIXTURE)

    def setUp(self):
        self.h = History(self.clean)

    def assertReports(self, expected):
        rep = checker.check(self.h.r)
        self.assertEqual(set(rep.violations), set(expected),
                         json.dumps(rep.to_json()["violations"], indent=1)[:3000])
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

    def test_a_run_without_acknowledgements_proves_nothing(self):
        self.h.drop(lambda r: r["kind"] == "ack")
        rep = checker.check(self.h.r)
        self.assertIn("nothing_acknowledged", rep.violations)

    def test_a_run_without_deliveries_proves_nothing(self):
        self.h.drop(lambda r: r["kind"] == "deliver")
        rep = checker.check(self.h.r)
        self.assertIn("nothing_delivered", rep.violations)

    def test_a_run_without_faults_proves_nothing(self):
        self.h.drop(lambda r: r["kind"] == "fault")
        rep = checker.check(self.h.r)
        self.assertIn("no_fault_injected", rep.violations)

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
        top = max(self.h.acked_seqs())
        self.h.drop(lambda r: r["kind"] in ("dump_event", "deliver") and r["seq"] >= top)
        for r in self.h.r:
            if r["kind"] == "heads" and r["heads"].get(self.h.device, 0) >= top:
                r["heads"][self.h.device] = top - 1
            if r["kind"] == "tail_start" and r["from"] > top:
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
            if r["kind"] in ("dump_event", "deliver") and r["seq"] in (k, k + 1):
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
            if (r["kind"] in ("dump_event", "deliver") and r["node"] == node
                    and r["seq"] == k):
                r["time_us"] += 1
        rep = self.assertReports({"divergence"})
        self.assertEqual([v["seq"] for v in rep.violations["divergence"]], [k])

    def test_no_convergence(self):
        """One replica stops short (and reports only what it holds)."""
        node = self.h.nodes()[-1]
        last = self.h.last()
        self.h.drop(lambda r: r["kind"] in ("dump_event", "deliver") and r["node"] == node
                    and r["seq"] > last - 5)
        for r in self.h.r:
            if r["kind"] == "tail_start" and r["node"] == node and r["from"] > last - 4:
                r["from"] = last - 4
        for r in self.h.r:
            if r["kind"] == "heads" and r["node"] == node:
                r["heads"][self.h.device] = min(r["heads"].get(self.h.device, 0), last - 5)
        rep = self.assertReports({"not_converged"})
        self.assertIsNone(rep.figures["convergence_s"])

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
        start = next(r for r in self.h.r if r["kind"] == "tail_start" and r["tail"] == later)
        skipped = {e["seq"] for e in self.h.tails()[later][:2]}
        start["from"] += 2
        self.h.drop(lambda r: r["kind"] == "deliver" and r["tail"] == later
                    and r["seq"] in skipped)
        self.assertReports({"tail_resume"})

    def test_tail_resumes_too_early(self):
        """A restarted tail asks from a seq already delivered, and gets it again."""
        earlier, later = self.h.resumed_tail()
        start = next(r for r in self.h.r if r["kind"] == "tail_start" and r["tail"] == later)
        prev = self.h.tails()[earlier][-1]
        start["from"] -= 1
        self.h.r.insert(self.h.r.index(start) + 1, dict(prev, tail=later))
        self.assertReports({"tail_resume", "tail_duplicate"})

    def test_daemon_crash_and_sanitizer_report(self):
        self.h.r.append({"t": 1e9, "kind": "process", "node": "a", "event": "exit",
                         "pid": 1, "rc": -6, "expected": False})
        self.h.r.append({"t": 1e9, "kind": "sanitizer", "node": "a",
                         "line": "ERROR: AddressSanitizer: heap-use-after-free"})
        self.assertReports({"daemon_exited", "sanitizer_report"})


if __name__ == "__main__":
    unittest.main()
