#!/usr/bin/env python3
"""Prints Cairn/raw-LevelDB ratios from a journal_bench JSON result, pair by pair."""
import json
import sys


def rate(b):
    return b.get("events/s", 0.0)


def main(path):
    with open(path) as f:
        data = json.load(f)
    by_name = {b["name"]: b for b in data["benchmarks"] if b.get("run_type") != "aggregate"}
    rows = []
    for prefix, label in (("BM_Append/", "append"), ("BM_AppendPipelined/", "pipelined")):
        for name, b in by_name.items():
            if not name.startswith(prefix):
                continue
            raw = by_name.get(name.replace(prefix, "BM_RawLevelDB/"))
            if raw:
                case = name.split("/", 1)[1].replace("/real_time", "")
                rows.append((label + " " + case, rate(b), rate(raw)))
    scan = by_name.get("BM_ReadSequential/min_time:0.500/real_time")
    raw_scan = by_name.get("BM_RawLevelDBScan/min_time:0.500/real_time")
    print()
    print("| case | Cairn events/s | raw LevelDB events/s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for case, ours, theirs in rows:
        case = case.replace("/min_time:0.500", "")
        print(f"| {case} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")
    if scan and raw_scan:
        print(f"| sequential read | {rate(scan):,.0f} | {rate(raw_scan):,.0f} | "
              f"{rate(scan) / rate(raw_scan):.2f} |")
    for name, b in by_name.items():
        if name.startswith("BM_AppendConcurrent/"):
            case = name.split("/", 1)[1].replace("/min_time:0.500", "").replace("/real_time", "")
            print(f"| 4 callers {case} | {rate(b):,.0f} | | |")


if __name__ == "__main__":
    main(sys.argv[1])
