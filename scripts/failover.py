#!/usr/bin/env python3
"""Client failover against a three-member ZooKeeper-protocol cluster: `keeperkit serve`
replicas (scripts/cluster.sh, scripts/live-server.sh --target keeperkit3) or a ZooKeeper
3.8 ensemble (scripts/live-server.sh --target zookeeper3, which validates the test).

usage: failover.py [--kill leader|connected] [--connect-to any|leader|follower]
  --kill leader      (default) the leader is killed, whichever member the client is on
  --kill connected   the member the client is connected to is killed
  --connect-to       the member the client connects to first (the connect string starts
                     with it and is not shuffled): the leader, a follower, or any
                     (default: kazoo's shuffle)
Environment: KK_CLIENT_PORTS (three client ports), KK_PIDS (their process ids, same
order), KK_SECONDS (how long writes go on after the kill, default 5), KK_HTTP_PORTS
(optional, keeperkit: their HTTP ports, same order; a leader then also has to say
ready on /status). The leader is the member whose `srvr` says `Mode: leader`.

A kazoo client with a three-host connect string creates an ephemeral node and writes
znodes continuously; the chosen member is killed with SIGKILL while writes go on.
Checks: the client's session survives (same session id, the ephemeral is still there),
every write the client saw acknowledged is present on every surviving member after a
sync, a leader leads among the survivors, and writes succeed again. Prints one summary
line; exit 0 when every check passed.
"""
import argparse
import json
import os
import signal
import sys
import time
import urllib.request

from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NodeExistsError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import fourlw  # noqa: E402 - scripts/lib, on the path just above


def srvr_mode(port):
    return fourlw.field(port, "srvr", "Mode: ")


def http_ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
            return bool(json.loads(r.read()).get("ready"))
    except Exception:  # noqa: BLE001 - not ready
        return False


def find_leader(members, cports, hports, deadline):
    """The index (into cports) of the member among `members` that leads, or None."""
    while time.time() < deadline:
        for i in members:
            if srvr_mode(cports[i]) == "leader" and (not hports or http_ready(hports[i])):
                return i
        time.sleep(0.1)
    return None


def connected_port(zk):
    """The client port of the member the client is connected to now (kazoo internals)."""
    sock = getattr(zk._connection, "_socket", None)
    try:
        return sock.getpeername()[1] if sock else None
    except OSError:
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kill", choices=("leader", "connected"), default="leader")
    ap.add_argument("--connect-to", choices=("any", "leader", "follower"), default="any")
    a = ap.parse_args()
    cports = [int(p) for p in os.environ["KK_CLIENT_PORTS"].split(",")]
    hports = [p for p in os.environ.get("KK_HTTP_PORTS", "").split(",") if p]
    pids = [int(p) for p in os.environ["KK_PIDS"].split(",")]
    seconds = float(os.environ.get("KK_SECONDS", "5"))
    everyone = range(len(cports))
    failures = []
    leader = find_leader(everyone, cports, hports, time.time() + 30)
    if leader is None:
        print("failover: FAIL no leader within 30 s")
        return 1
    order = list(everyone)
    if a.connect_to != "any":
        first = leader if a.connect_to == "leader" else next(i for i in order if i != leader)
        order = [first] + [i for i in order if i != first]
    hosts = ",".join(f"127.0.0.1:{cports[i]}" for i in order)
    zk = KazooClient(hosts=hosts, timeout=15.0, randomize_hosts=a.connect_to == "any",
                     connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 0.5})
    zk.start(timeout=20)
    sid = zk.client_id[0]
    on = connected_port(zk)
    if a.connect_to != "any" and on != cports[order[0]]:
        print(f"failover: FAIL the client is on port {on}, not on {cports[order[0]]}")
        zk.stop()
        zk.close()
        return 1
    base = "/failover-%d" % int(time.time() * 1000)   # a fresh parent for each run
    zk.ensure_path(base)
    zk.create(base + "/eph", b"mine", ephemeral=True)
    acked = []
    unknown = 0
    i = 0

    def write():
        nonlocal i, unknown
        path = f"{base}/n-{i:06d}"
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
    if a.kill == "leader":
        victim = leader
    else:
        on = connected_port(zk)
        victim = next((j for j in everyone if cports[j] == on), None)
        if victim is None:
            print(f"failover: FAIL the client is not connected to a member (port {on})")
            zk.stop()
            zk.close()
            return 1
    t_kill = time.time()
    os.kill(pids[victim], signal.SIGKILL)
    first_ok = None
    while time.time() < t_kill + seconds:
        if write() and first_ok is None:
            first_ok = time.time() - t_kill
    survivors = [j for j in everyone if j != victim]
    new_leader = find_leader(survivors, cports, hports, time.time() + 30)
    if new_leader is None:
        failures.append("no leader among the survivors")
    if first_ok is None:
        failures.append(f"no write succeeded within {seconds} s of the kill")
    now_sid = zk.client_id[0] if zk.client_id else None
    if now_sid != sid:
        failures.append(f"the session changed: {sid:#x} -> {now_sid}")
    moved_to = connected_port(zk)
    try:
        if zk.get(base + "/eph")[0] != b"mine":
            failures.append("the ephemeral's data changed")
    except Exception as e:  # noqa: BLE001
        failures.append(f"the ephemeral is gone: {e!r}")
    # Every acknowledged write, on each surviving member, after a sync.
    for j in survivors:
        c = KazooClient(hosts=f"127.0.0.1:{cports[j]}", timeout=10.0)
        try:
            c.start(timeout=15)
            c.sync(base)
            have = set(c.get_children(base))
            missing = [p for p in acked if p.rsplit("/", 1)[1] not in have]
            if missing:
                failures.append(f"member {j + 1} lacks {len(missing)} acknowledged writes, e.g. {missing[:3]}")
            if "eph" not in have:
                failures.append(f"member {j + 1} lacks the ephemeral")
        except Exception as e:  # noqa: BLE001
            failures.append(f"member {j + 1}: {e!r}")
        finally:
            c.stop()
            c.close()
    zk.stop()
    zk.close()
    took = "none" if first_ok is None else f"{first_ok:.2f}s"
    verdict = "PASS" if not failures else "FAIL " + "; ".join(failures)
    role = "leader" if victim == leader else "follower"
    print(
        f"failover: {verdict} (member {victim + 1}, the {role}, killed"
        f"{' under the client' if a.kill == 'connected' else ''}; the client went on with port {moved_to}; "
        f"{len(acked)} writes acknowledged, {unknown} with unknown outcome; first write after the kill: {took}; "
        f"session {sid:#x} kept: {now_sid == sid})"
    )
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
