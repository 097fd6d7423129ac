#!/usr/bin/env python3
"""Interest (issue 15, item 2), with real processes. Node a is the source of
door-1 and cam-1 (both of group floor2) and door-2; b follows cam-1 and door-1
only, c follows door-2 and is told only of b, with room for one peer: b does
not hold door-2, so c must find a holder through the holdings b passes on, and
dial it. d follows everything: door-2 does travel, so b's not holding it is
b's interest, not a stream that never left a.

At run time `cairn follow group:floor2` brings c the floor's devices (the
group a claim of the catalogue, checked against each device's certificate),
`cairn unfollow door-2` deletes door-2 there, the change survives a restart,
and `cairn follow --reset` returns to --follow. Bad patterns get a clear error
and change nothing.

    interest_test.py CAIRND CAIRN CERTS_DIR
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hostile"))
from peer import Network, free_port, wait_for  # noqa: E402


def main():
    cairnd, cairn, certs = sys.argv[1:4]
    net = Network(cairnd, cairn, certs, ["a", "b", "c", "d"], "cairn-interest-")
    check = net.check
    try:
        for name, groups in (("door-1", ["floor2"]), ("cam-1", ["floor2"]), ("door-2", [])):
            args = [os.path.join(certs, "make-device.sh"), net.pki, name]
            for g in groups:
                args += ["--group", g]
            r = subprocess.run(args, capture_output=True, text=True)
            check(r.returncode == 0, f"make-device.sh {name} {groups}: {r.stderr.strip()}")
        bad = subprocess.run([os.path.join(certs, "make-device.sh"), net.pki, "x-1",
                              "--group", "a/b"], capture_output=True, text=True)
        check(bad.returncode != 0 and "invalid group" in bad.stderr,
              f"make-device.sh refuses a bad group: {bad.stderr.strip()}")

        def devices(node):
            return {d["device"]: d for d in net.status(node).get("devices", [])}

        def stored(node):
            return set(devices(node))

        ports = {n: free_port() for n in "abcd"}
        src = []
        for dev in ("door-1", "cam-1", "door-2"):
            src += ["--device-cert", f"{net.pki}/{dev}.crt", "--device-key", f"{net.pki}/{dev}.key"]
        # a dials no one it learns of (b and d dial it): c must dial a itself.
        net.start("a", ports["a"], "--new-device", "--target-peers", "1", *src)
        net.start("b", ports["b"], "--new-device", "--peer", f"127.0.0.1:{ports['a']}",
                  "--follow", "cam-1", "--follow", "door-1")
        net.start("d", ports["d"], "--new-device", "--peer", f"127.0.0.1:{ports['a']}",
                  "--target-peers", "1")
        for dev, n in (("door-1", 3), ("cam-1", 5), ("door-2", 4)):
            codes = [net.cli("a", "append", dev, "note", f"{dev}-{i}").returncode
                     for i in range(n)]
            check(codes == [0] * n, f"a appends {n} events to {dev}: {codes}")
        check(wait_for(lambda: devices("d").get("door-2", {}).get("last") == 4, 30),
              "d (every device) holds door-2: it travels")
        check(wait_for(lambda: devices("b").get("cam-1", {}).get("last") == 5 and
                       devices("b").get("door-1", {}).get("last") == 3, 30),
              "b holds what it follows")
        check(stored("b") == {"b", "cam-1", "door-1"},
              f"b stores only its own and what it follows: {sorted(stored('b'))}")
        check(net.status("b").get("follow") == ["cam-1", "door-1"],
              f"b's status says what it follows: {net.status('b').get('follow')}")

        # Following more on a node that follows every device changes nothing: an
        # error that says how to narrow, and nothing stored.
        r = net.cli("d", "follow", "door-1")
        check(r.returncode != 0 and "--only" in r.stderr and
              not os.path.exists(os.path.join(net.data("d"), "interest")),
              f"cairn follow on an every-device node is refused: {r.stderr.strip()[:160]}")

        # c: only door-2, told only of b, room for one peer.
        net.start("c", ports["c"], "--new-device", "--peer", f"127.0.0.1:{ports['b']}",
                  "--target-peers", "1", "--follow", "door-2")
        check(wait_for(lambda: devices("c").get("door-2", {}).get("last") == 4, 40),
              "c found a holder of door-2 through b's holdings and caught up")
        rows = [p for p in net.status("c").get("peers", []) if p["id"] == "a"]
        check(any(p["state"] == "active" for p in rows) and
              "holdings say it may hold door-2" in net.log("c"),
              f"c dialled a for its holdings: {rows}")
        check(stored("c") == {"c", "door-2"}, f"c stores door-2 only: {sorted(stored('c'))}")
        r = net.cli("c", "verify", "door-2")
        check(r.returncode == 0, f"c's door-2 verifies: {r.stdout.strip()} {r.stderr.strip()}")

        # At run time: a group, then an unfollow that deletes.
        r = net.cli("c", "follow", "group:floor2")
        check(r.returncode == 0 and "group:floor2" in r.stdout,
              f"cairn follow group:floor2: {r.stdout.strip()} {r.stderr.strip()}")
        check(wait_for(lambda: devices("c").get("cam-1", {}).get("last") == 5 and
                       devices("c").get("door-1", {}).get("last") == 3, 30),
              "c fetched the group's devices")
        r = net.cli("c", "unfollow", "door-2")
        check(r.returncode == 0, f"cairn unfollow door-2: {r.stdout.strip()} {r.stderr.strip()}")
        check(wait_for(lambda: "door-2" not in stored("c"), 20), "door-2 is deleted at c")
        r = net.cli("c", "tail", "door-2")
        check(r.returncode != 0, f"a tail of door-2 at c fails now: {r.stderr.strip()}")
        check(stored("c") == {"c", "cam-1", "door-1"}, f"c: {sorted(stored('c'))}")

        # Bad input: a clear error, nothing changed.
        for args, what in ((["follow", "a b"], "a pattern with a space"),
                           (["unfollow", "door-9"], "a pattern that is not followed"),
                           (["unfollow"], "no pattern")):
            r = net.cli("c", *args)
            check(r.returncode != 0 and r.stderr.strip() != "",
                  f"{what} is refused: {r.stderr.strip()[:160]}")
        check(net.status("c").get("follow") == ["group:floor2"],
              f"and the interest is unchanged: {net.status('c').get('follow')}")
        r = net.run_once("d", "--follow", "a;b", data="x")
        check(r.returncode != 0 and "--follow" in r.stderr,
              f"cairnd --follow with a bad pattern does not start: {r.stderr.strip()[:160]}")

        # Survives a restart; --reset returns to --follow (door-2 again).
        net.procs[-1].terminate()
        net.procs[-1].wait(timeout=20)
        net.start("c", ports["c"], "--new-device", "--peer", f"127.0.0.1:{ports['b']}",
                  "--target-peers", "1", "--follow", "door-2")
        st = net.status("c")
        check(st.get("follow") == ["group:floor2"] and "cairn follow" in st.get("follow_origin", ""),
              f"after a restart c follows what cairn follow set: {st.get('follow')} "
              f"({st.get('follow_origin')})")
        check("--follow is not used" in net.log("c"), "and the log says --follow is not used")
        r = net.cli("c", "follow", "--reset")
        check(r.returncode == 0 and "door-2" in r.stdout,
              f"cairn follow --reset: {r.stdout.strip()} {r.stderr.strip()}")
        check(wait_for(lambda: stored("c") == {"c", "door-2"} and
                       devices("c")["door-2"].get("last") == 4, 40),
              f"c is back to door-2 alone: {sorted(stored('c'))}")
        r = net.cli("c", "follow", "--only", "cam-1")
        check(r.returncode == 0 and wait_for(lambda: stored("c") == {"c", "cam-1"}, 40),
              f"cairn follow --only cam-1 replaces it at once: {sorted(stored('c'))}")

        # A DATA/interest cut to nothing is an error at start, not "follow nothing".
        net.procs[-1].terminate()
        net.procs[-1].wait(timeout=20)
        open(os.path.join(net.data("c"), "interest"), "w").close()
        r = net.run_once("c")
        check(r.returncode != 0 and "names no pattern" in r.stderr,
              f"an empty DATA/interest stops the node: {r.stderr.strip()[:200]}")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
