#!/usr/bin/env python3
"""Revocation, renewal, CA rollover and expired device certificates (issue 14,
item 5), end to end with the certs/ scripts and real cairnd processes.

  1. a runs with --crl. mallory, a peer with a valid certificate, is revoked
     (certs/revoke.sh) and a gets SIGHUP: mallory is disconnected within a second,
     the log and status say so, and it is refused at its next handshake, while the
     honest peer b keeps replicating.
  2. A list that does not load (garbage, or one whose next update has passed)
     leaves the one in force, and the log says why.
  3. b's certificate is renewed with its key (certs/renew.sh); b restarts with it,
     and a new node c replicates b's whole stream, signed under both certificates.
  4. A CA rollover: a trusts the old and a new CA at once (both in --ca), and a
     node d with a certificate of the new CA joins and replicates.
  5. A device certificate that expires: its source appends while it is valid and
     is refused after; a node that joins after the expiry still replicates the
     history (each record was signed while the certificate was valid).

    revocation_test.py CAIRND CAIRN CERTS_DIR
"""
import datetime
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer import HostilePeer, Network, free_port, wait_for  # noqa: E402


def main():
    cairnd, cairn, certs = sys.argv[1:4]
    net = Network(cairnd, cairn, certs, ["a", "b", "c", "mallory"], "cairn-revoke-")
    check, pki = net.check, net.pki

    def script(name, *args, env=None):
        e = dict(os.environ, **(env or {}))
        r = subprocess.run([os.path.join(certs, name), *args], capture_output=True, text=True,
                           env=e)
        if r.returncode != 0:
            raise RuntimeError(f"{name} {args}: {r.stderr}")
        return r.stdout

    def last(name, dev):
        d = next((d for d in net.status(name).get("devices", []) if d["device"] == dev), {})
        return d.get("last", 0)

    def append(name, dev, n, tag):
        lines = "".join(json.dumps({"type": "note", "payload": {tag: i}}) + "\n"
                        for i in range(n))
        return net.cli(name, "append", dev, "--stdin", input=lines)

    def connects(name):
        try:
            with HostilePeer("127.0.0.1", aport, pki, name, timeout=3) as p:
                time.sleep(0.3)
                return not p.closed
        except (OSError, RuntimeError):
            return False

    honest = ["--new-device", "--peer-exchange", "off"]
    procs = {}

    def restart_b_with_dx():
        procs["b"].send_signal(signal.SIGTERM)
        procs["b"].wait(20)
        procs["b"] = net.start("b", bport, *honest, "--peer", f"127.0.0.1:{aport}",
                               "--device-cert", f"{pki}/dx.crt", "--device-key",
                               f"{pki}/dx.key", ca=os.path.join(net.work, "both-cas.crt"))
    try:
        script("revoke.sh", pki)  # an empty list to start with
        crl = os.path.join(pki, "crl.pem")
        aport, bport = free_port(), free_port()
        procs["a"] = net.start("a", aport, *honest, "--crl", crl)
        procs["b"] = net.start("b", bport, *honest, "--peer", f"127.0.0.1:{aport}")
        append("b", "b", 5, "before")
        check(wait_for(lambda: last("a", "b") == 5, 20), "a replicates b (5 events)")

        # 1. Revocation.
        m = HostilePeer("127.0.0.1", aport, pki, "mallory")
        check(not m.closed, "mallory connects while its certificate is valid")
        script("revoke.sh", pki, os.path.join(pki, "mallory.crt"))
        t0 = time.monotonic()
        procs["a"].send_signal(signal.SIGHUP)
        dropped = wait_for(lambda: m.closed, 5, step=0.02)
        took = time.monotonic() - t0
        check(dropped and took < 1.5,
              f"mallory disconnected {took:.2f} s after SIGHUP (within a second)")
        m.close()
        log = net.log("a")
        check("reloaded: 1 revoked certificate" in log, "the log says the list was reloaded")
        check("peer mallory (" in log and "revoked on" in log and "disconnected" in log,
              "the log names mallory and why it was disconnected")
        status = net.status("a")
        check("1 revoked" in (status.get("crl") or "") and
              status.get("revoked_disconnects") == 1,
              f"status shows the list and the disconnect: {status.get('crl')}, "
              f"{status.get('revoked_disconnects')}")
        check(not connects("mallory"), "mallory is refused at its next handshake")
        check(connects("c"), "a certificate that is not revoked still connects")
        append("b", "b", 5, "after-revocation")
        check(wait_for(lambda: last("a", "b") == 10, 20), "b keeps replicating to a")

        # 2. A list that does not load leaves the one in force.
        good = open(crl).read()
        with open(crl, "w") as f:
            f.write("not a revocation list\n")
        procs["a"].send_signal(signal.SIGHUP)
        check(wait_for(lambda: "no PEM revocation list" in net.log("a"), 5),
              "a garbage list is refused with a reason")
        script("revoke.sh", pki, env={"CAIRN_CRL_SECONDS": "1"})
        time.sleep(1.5)
        procs["a"].send_signal(signal.SIGHUP)
        check(wait_for(lambda: "its next update has passed" in net.log("a"), 5),
              "a list whose next update has passed is refused with a reason")
        check(not connects("mallory"), "the list in force still refuses mallory")
        with open(crl, "w") as f:
            f.write(good)

        # 3. Renewal: b's certificate renewed with its key; b's history stays valid.
        script("renew.sh", pki, "b")
        procs["b"].send_signal(signal.SIGTERM)
        procs["b"].wait(20)
        procs["b"] = net.start("b", bport, *honest, "--peer", f"127.0.0.1:{aport}")
        append("b", "b", 5, "after-renewal")
        check(wait_for(lambda: last("a", "b") == 15, 20), "a replicates b after its renewal")
        cport = free_port()
        procs["c"] = net.start("c", cport, *honest, "--peer", f"127.0.0.1:{aport}")
        check(wait_for(lambda: last("c", "b") == 15, 20),
              f"a new node holds all 15 of b's events (signed under both certificates): "
              f"{last('c', 'b')}")

        # 4. CA rollover: a trusts the old and a new CA.
        pki2 = os.path.join(net.work, "pki2")
        script("make-ca.sh", pki2, env={"CAIRN_CA_NAME": "cairn-ca-2"})
        script("make-node.sh", pki2, "d")
        both = os.path.join(net.work, "both-cas.crt")
        with open(both, "w") as f:
            f.write(open(os.path.join(pki, "ca.crt")).read())
            f.write(open(os.path.join(pki2, "ca.crt")).read())
        # Every node trusts both first (restarted), then new certificates are issued.
        procs["a"].send_signal(signal.SIGTERM)
        procs["a"].wait(20)
        procs["a"] = net.start("a", aport, *honest, "--crl", crl, ca=both)
        procs["b"].send_signal(signal.SIGTERM)
        procs["b"].wait(20)
        procs["b"] = net.start("b", bport, *honest, "--peer", f"127.0.0.1:{aport}", ca=both)
        dport = free_port()
        d_data = net.data("d")
        log = open(d_data + ".log", "a")
        procs["d"] = subprocess.Popen(
            [cairnd, "--data", d_data, "--listen", f"127.0.0.1:{dport}", "--ca", both,
             "--cert", f"{pki2}/d.crt", "--key", f"{pki2}/d.key", *honest,
             "--peer", f"127.0.0.1:{aport}"], stdout=log, stderr=log)
        net.procs.append(procs["d"])
        check(wait_for(lambda: last("d", "b") == 15, 30),
              f"a node of the new CA joins and replicates b: {last('d', 'b')} of 15")
        append("d", "d", 2, "new-ca")
        check(wait_for(lambda: last("b", "d") == 2, 20),
              "a node of the old CA replicates the new one's device through a")

        # 5. A device certificate that expires.
        end = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=12)
        db = os.path.join(net.work, "cadb")
        os.makedirs(db)
        open(os.path.join(db, "index.txt"), "w").close()
        with open(os.path.join(db, "ca.cnf"), "w") as f:
            f.write(f"[ca]\ndefault_ca = c\n[c]\ndatabase = {db}/index.txt\n"
                    f"new_certs_dir = {db}\nserial = {db}/serial\ndefault_md = default\n"
                    f"policy = p\nunique_subject = no\n[p]\ncommonName = supplied\n"
                    f"[ext]\nbasicConstraints=critical,CA:FALSE\n"
                    f"keyUsage=critical,digitalSignature\n"
                    f"extendedKeyUsage=1.3.6.1.5.5.7.3.36\n")
        with open(os.path.join(db, "serial"), "w") as f:
            f.write("1000\n")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out",
                        f"{pki}/dx.key"], check=True, capture_output=True)
        subprocess.run(["openssl", "req", "-new", "-key", f"{pki}/dx.key", "-subj", "/CN=dx",
                        "-out", f"{db}/dx.csr"], check=True, capture_output=True)
        subprocess.run(["openssl", "ca", "-batch", "-config", f"{db}/ca.cnf", "-extensions",
                        "ext", "-cert", f"{pki}/ca.crt", "-keyfile", f"{pki}/ca.key",
                        "-in", f"{db}/dx.csr", "-out", f"{pki}/dx.crt", "-enddate",
                        end.strftime("%Y%m%d%H%M%SZ"), "-notext"],
                       check=True, capture_output=True)
        restart_b_with_dx()
        r = append("b", "dx", 3, "valid")
        check(r.returncode == 0, f"dx appends while its certificate is valid: {r.stderr}")
        check(wait_for(lambda: last("a", "dx") == 3, 20), "a replicates dx")
        wait_for(lambda: datetime.datetime.now(datetime.timezone.utc) > end, 20)
        time.sleep(1)
        r = append("b", "dx", 1, "expired")
        check(r.returncode != 0 and "expired" in r.stderr,
              f"an append after dx's certificate expired is refused: {r.stderr.strip()}")
        eport = free_port()
        script("make-node.sh", pki, "e")
        procs["e"] = net.start("e", eport, *honest, "--peer", f"127.0.0.1:{aport}", ca=both)
        check(wait_for(lambda: last("e", "dx") == 3, 20),
              f"a node that joins after the expiry replicates dx's history: "
              f"{last('e', 'dx')} of 3")

        # 6. dx renewed after the expiry: its source signs again, and what it signs
        # now (after the old certificate's end) reaches every node, relays included.
        script("renew.sh", pki, "dx")
        restart_b_with_dx()
        r = append("b", "dx", 2, "renewed")
        check(r.returncode == 0, f"dx appends again once renewed: {r.stderr.strip()}")
        check(wait_for(lambda: last("a", "dx") == 5 and last("e", "dx") == 5, 20),
              f"records signed after the old certificate's end reach a and, through it, e: "
              f"{last('a', 'dx')}, {last('e', 'dx')} of 5 (b holds {last('b', 'dx')}; a's "
              f"peers: {[(p['id'], p['state'], p['reason']) for p in net.status('a').get('peers', [])]})")
        fport = free_port()
        script("make-node.sh", pki, "f")
        net.start("f", fport, *honest, "--peer", f"127.0.0.1:{eport}", ca=both)
        check(wait_for(lambda: last("f", "dx") == 5, 20),
              f"a new node that follows dx only through e holds all 5: {last('f', 'dx')}")
    finally:
        net.finish()


if __name__ == "__main__":
    main()
