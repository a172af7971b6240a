#!/usr/bin/env python3
"""Client failover against a three-node keeperkit cluster (scripts/cluster.sh runs it).

Environment: KK_CLIENT_PORTS (three client ports), KK_HTTP_PORTS (their HTTP ports, same
order), KK_PIDS (their process ids, same order), KK_SECONDS (how long writes go on after
the kill, default 5).

A kazoo client with a three-host connect string creates an ephemeral node and writes
znodes continuously; the leader (found through /status) is killed with SIGKILL while
writes go on. Checks: the client's session survives (same session id, the ephemeral is
still there), every write the client saw acknowledged is present on both surviving
servers after a sync, a new leader is elected, and writes succeed again. Prints one
summary line; exit 0 when every check passed.
"""
import json
import os
import signal
import sys
import time
import urllib.request

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NodeExistsError


def status(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
            return json.loads(r.read())
    except Exception:
        return None


def find_leader(http_ports, deadline):
    while time.time() < deadline:
        for i, p in enumerate(http_ports):
            s = status(p)
            if s and s.get("state") == "leader" and s.get("ready"):
                return i
        time.sleep(0.1)
    return None


def main():
    cports = os.environ["KK_CLIENT_PORTS"].split(",")
    hports = os.environ["KK_HTTP_PORTS"].split(",")
    pids = [int(p) for p in os.environ["KK_PIDS"].split(",")]
    seconds = float(os.environ.get("KK_SECONDS", "5"))
    failures = []
    leader = find_leader(hports, time.time() + 30)
    if leader is None:
        print("failover: FAIL no leader within 30 s")
        return 1
    hosts = ",".join(f"127.0.0.1:{p}" for p in cports)
    zk = KazooClient(hosts=hosts, timeout=15.0, connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 0.5})
    zk.start(timeout=20)
    sid = zk.client_id[0]
    zk.ensure_path("/failover")
    zk.create("/failover/eph", b"mine", ephemeral=True)
    acked = []
    unknown = 0
    i = 0

    def write():
        nonlocal i, unknown
        path = f"/failover/n-{i:06d}"
        i += 1
        try:
            zk.create(path, str(i).encode())
            acked.append(path)
            return True
        except (ConnectionLoss, NodeExistsError):
            # The outcome of a write whose answer was lost is unknown (it may have been
            # committed): not counted as acknowledged.
            unknown += 1
            time.sleep(0.05)
            return False

    for _ in range(200):
        write()
    t_kill = time.time()
    os.kill(pids[leader], signal.SIGKILL)
    first_ok = None
    while time.time() < t_kill + seconds:
        if write() and first_ok is None:
            first_ok = time.time() - t_kill
    new_leader = find_leader([p for j, p in enumerate(hports) if j != leader], time.time() + 30)
    if new_leader is None:
        failures.append("no new leader")
    if first_ok is None:
        failures.append(f"no write succeeded within {seconds} s of the kill")
    now_sid = zk.client_id[0] if zk.client_id else None
    if now_sid != sid:
        failures.append(f"the session changed: {sid:#x} -> {now_sid}")
    try:
        if zk.get("/failover/eph")[0] != b"mine":
            failures.append("the ephemeral's data changed")
    except Exception as e:  # noqa: BLE001
        failures.append(f"the ephemeral is gone: {e!r}")
    # Every acknowledged write, on each surviving server, after a sync.
    for j, p in enumerate(cports):
        if j == leader:
            continue
        c = KazooClient(hosts=f"127.0.0.1:{p}", timeout=10.0)
        try:
            c.start(timeout=15)
            c.sync("/failover")
            have = set(c.get_children("/failover"))
            missing = [a for a in acked if a.rsplit("/", 1)[1] not in have]
            if missing:
                failures.append(f"server {j + 1} lacks {len(missing)} acknowledged writes, e.g. {missing[:3]}")
            if "eph" not in have:
                failures.append(f"server {j + 1} lacks the ephemeral")
        except Exception as e:  # noqa: BLE001
            failures.append(f"server {j + 1}: {e!r}")
        finally:
            c.stop()
            c.close()
    zk.stop()
    zk.close()
    took = "none" if first_ok is None else f"{first_ok:.2f}s"
    verdict = "PASS" if not failures else "FAIL " + "; ".join(failures)
    print(
        f"failover: {verdict} (leader node {leader + 1} killed; {len(acked)} writes acknowledged, "
        f"{unknown} with unknown outcome; first write after the kill: {took}; session {sid:#x} kept: {now_sid == sid})"
    )
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
