#!/usr/bin/env python3
"""Client-side checks of scripts/live-roundtrip.sh against a running ZooKeeper (kazoo).

usage:
  zk_roundtrip_checks.py seq --port P --dump KEEPERKIT_DUMP.jsonl
      Picks the non-ephemeral node with the highest stored cversion (the per-parent
      sequence counter, = (client cversion + numChildren) / 2) in the source dump, creates
      a sequential child under it and checks that its suffix is exactly that counter
      (%010d). Prints one JSON line; exit 1 on a mismatch.
  zk_roundtrip_checks.py open-session --port P --root /rt
      Creates ROOT (persistent), ROOT/seq- (persistent sequential, 3 times) and the
      ephemerals ROOT/e1, ROOT/e2 with a 12 s session (long enough that a
      slow machine still finds them after the restart and the first connect), then exits WITHOUT closing the
      session (os._exit), so that the data directory keeps the session open. Prints the
      session id and the paths as one JSON line.
  zk_roundtrip_checks.py ephemerals --port P --paths A,B --gone-within S
      Checks that the paths exist now, then waits up to S seconds for all of them to
      disappear (their session expiring on the server). Prints one JSON line with the
      time it took; exit 1 if they were missing at first or never disappeared.

Every client authenticates as super:superpw (scripts/lib/zkserver.sh) so ACLs do not
get in the way.
"""
import argparse
import json
import os
import sys
import time

from kazoo.client import KazooClient

SUPER = ("digest", "super:superpw")


def client(port, timeout=30.0):
    zk = KazooClient(hosts="127.0.0.1:%d" % port, timeout=timeout, auth_data=[SUPER])
    zk.start(timeout=30)
    return zk


def cmd_seq(a):
    best = None
    with open(a.dump, "rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            n = json.loads(raw)
            st = n["stat"]
            if st["ephemeralOwner"] != 0 or n["path"].startswith("/zookeeper"):
                continue
            stored = (st["cversion"] + st["numChildren"]) // 2
            if best is None or stored > best[1]:
                best = (n["path"], stored)
    if best is None:
        print(json.dumps({"error": "no candidate parent"}))
        return 1
    parent, stored = best
    zk = client(a.port)
    try:
        prefix = ("/" if parent == "/" else parent + "/") + "rt-seq-"
        created = zk.create(prefix, b"after restart", sequence=True)
    finally:
        zk.stop()
        zk.close()
    want = prefix + "%010d" % stored
    ok = created == want
    print(json.dumps({"parent": parent, "stored_cversion": stored, "created": created,
                      "expected": want, "ok": ok}))
    return 0 if ok else 1


def cmd_open_session(a):
    zk = KazooClient(hosts="127.0.0.1:%d" % a.port, timeout=12.0, auth_data=[SUPER])
    zk.start(timeout=30)
    root = a.root
    zk.create(root, b"roundtrip")
    seqs = [zk.create(root + "/seq-", b"s", sequence=True) for _ in range(3)]
    eph = [zk.create(root + "/e1", b"eph 1", ephemeral=True),
           zk.create(root + "/e2", b"eph 2", ephemeral=True)]
    sid = zk.client_id[0]
    print(json.dumps({"session": "0x%x" % sid, "timeout_ms": int(zk._session_timeout),
                      "ephemerals": eph, "sequential": seqs}))
    sys.stdout.flush()
    os._exit(0)  # no closeSession: the session stays open in the data directory


def cmd_ephemerals(a):
    paths = [p for p in a.paths.split(",") if p]
    zk = client(a.port)
    try:
        missing = [p for p in paths if zk.exists(p) is None]
        if missing:
            print(json.dumps({"ok": False, "error": "missing right after start", "missing": missing}))
            return 1
        owners = {p: "0x%x" % zk.exists(p).ephemeralOwner for p in paths}
        t0 = time.time()
        while time.time() - t0 < a.gone_within:
            left = [p for p in paths if zk.exists(p) is not None]
            if not left:
                print(json.dumps({"ok": True, "owners": owners,
                                  "gone_after_s": round(time.time() - t0, 1)}))
                return 0
            time.sleep(0.25)
        print(json.dumps({"ok": False, "error": "still there after %ss" % a.gone_within,
                          "left": left}))
        return 1
    finally:
        zk.stop()
        zk.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seq")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--dump", required=True)
    s = sub.add_parser("open-session")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--root", default="/rt")
    s = sub.add_parser("ephemerals")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--paths", required=True)
    s.add_argument("--gone-within", type=float, default=30.0)
    a = p.parse_args()
    return {"seq": cmd_seq, "open-session": cmd_open_session, "ephemerals": cmd_ephemerals}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
