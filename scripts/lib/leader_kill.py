#!/usr/bin/env python3
"""Time from a leader kill to the first successful write, on a three-node ensemble
(ZooKeeper or keeperkit; scripts/bench-cluster.sh runs it).

Usage: leader_kill.py CLIENT_PORTS PIDS [TIMEOUT_S]
  CLIENT_PORTS  the three client ports, comma-separated
  PIDS          the three server process ids, same order

Finds the leader (mntr's zk_server_state on every server), connects a kazoo client to
the two other servers (so that no reconnection attempt goes to the dead one: what is
measured is the ensemble's recovery, not the client's choice of server; reconnections
are retried every 20 ms), has it write (setData, one at a time) for a second, then
kills the leader with SIGKILL and keeps writing. Prints one JSON line: the index of the
killed server, its pid, and kill_to_write_ms, the time from the kill to the answer of
the first write sent after it that succeeded. Exit 1 (with a reason) when there is no
leader, no write before the kill succeeds, or none succeeds within TIMEOUT_S (default 60).
"""
import json
import os
import signal
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fourlw  # noqa: E402 - this folder, on the path just above


def mntr_state(port):
    return fourlw.field(port, "mntr", "zk_server_state\t")


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    ports = sys.argv[1].split(",")
    pids = [int(p) for p in sys.argv[2].split(",")]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    leader = None
    deadline = time.time() + 30
    while leader is None and time.time() < deadline:
        states = [mntr_state(p) for p in ports]
        if states.count("leader") == 1 and states.count("follower") == len(ports) - 1:
            leader = states.index("leader")
        else:
            time.sleep(0.1)
    if leader is None:
        print("leader-kill: no leader with every follower within 30 s", file=sys.stderr)
        return 1
    others = [p for i, p in enumerate(ports) if i != leader]
    retry = KazooRetry(max_tries=-1, delay=0.02, backoff=1, max_delay=0.02, ignore_expire=False)
    zk = KazooClient(hosts=",".join(f"127.0.0.1:{p}" for p in others), timeout=20.0,
                     connection_retry=retry)
    zk.start(timeout=20)
    path = "/leader-kill-%d" % os.getpid()
    zk.ensure_path(path)
    state = {"kill": None, "first": None, "before": 0, "errors": 0}
    stop = threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            sent = time.monotonic()
            n += 1
            try:
                zk.set_async(path, b"%d" % n).get(timeout=timeout)
            except Exception:
                state["errors"] += 1
                time.sleep(0.005)
                continue
            done = time.monotonic()
            k = state["kill"]
            if k is None:
                state["before"] += 1
            elif sent >= k:
                state["first"] = done
                stop.set()
                return

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(1.0)
    if state["before"] == 0:
        print("leader-kill: no write succeeded before the kill", file=sys.stderr)
        stop.set()
        return 1
    state["kill"] = time.monotonic()
    os.kill(pids[leader], signal.SIGKILL)
    t.join(timeout)
    stop.set()
    if state["first"] is None:
        print("leader-kill: no write succeeded within %.0f s of the kill" % timeout, file=sys.stderr)
        return 1
    ms = (state["first"] - state["kill"]) * 1000.0
    print(json.dumps({"killed": leader, "pid": pids[leader], "kill_to_write_ms": round(ms, 1),
                      "writes_before": state["before"], "failed_attempts": state["errors"]}))
    try:
        zk.delete(path)
        zk.stop()
        zk.close()
    except Exception:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
