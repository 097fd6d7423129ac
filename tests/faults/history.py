"""The history of a fault run: JSON lines, written by the harness (never by a daemon).

Every line is one object with "t" (seconds since the run started, monotonic) and
"kind". The kinds, and the fields each carries:

  meta          scenario, nodes, devices, params
  write         w (writer id), device, session, n0, n1: payloads {"w": w, "n": n} for
                n0..n1 were written to that `cairn append --stdin` session, in order
  ack           w, device, session, first, last, n0, n1: the CLI printed an ack for
                seqs first..last, which covers payloads n0..n1 of that session
  session_end   w, device, session, rc, unknown: [[n0, n1], ...] written, never acked
  tail_start    tail, node, device, from
  deliver       tail, node, device, seq, time_us, type, payload
  snapshot      tail, node, device, seq   (a tail or a dump began at a snapshot;
                tail is null for a dump)
  tail_end      tail, node, rc
  heads         node, heads: {device: last}, forks, peers
  converged     seconds, lasts: {device: last}   (every node holds the same heads)
  finding       what, and fields of its own: a scenario's own check failed
  fault         name, node (or link), phase: "start" | "heal", detail
  process       node, event: "start" | "exit", pid, rc, expected
  sanitizer     node, line     (a sanitizer report in a daemon's log)
  dump_event    node, device, seq, time_us, type, payload
  dump_end      node, device, rc, count
  note          text

Payloads are {"w": writer, "n": counter}; a payload is written at most once in a
run, so phantoms and duplicates are recognisable.

Thread-safety: History.record may be called from any thread.
"""
import json
import threading
import time


class History:
    """Appends records to a JSON-lines file; flushes each line."""

    def __init__(self, path):
        self.path = path
        self._f = open(path, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._t0 = time.monotonic()

    def now(self):
        return round(time.monotonic() - self._t0, 4)

    def record(self, kind, **fields):
        line = {"t": self.now(), "kind": kind}
        line.update(fields)
        text = json.dumps(line, separators=(",", ":"), sort_keys=True)
        with self._lock:
            if self._f is not None:
                self._f.write(text + "\n")
                self._f.flush()
        return line["t"]

    def close(self):
        with self._lock:
            if self._f is not None:
                self._f.close()
                self._f = None


def load(path):
    """Reads a history file: a list of records in the order they were written."""
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{i}: not JSON: {e}") from None
    return out


def payload(writer, n):
    return {"w": writer, "n": n}
