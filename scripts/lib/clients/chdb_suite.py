#!/usr/bin/env python3
"""chdb (ClickHouse's engine, with ClickHouse's own ZooKeeper client) using a
ZooKeeper-protocol server for a KeeperMap table and a ReplicatedMergeTree table.

usage: chdb_suite.py --hosts HOST:PORT[,HOST:PORT...] --dir DIR --phase 1|2|3
       (or --port PORT for 127.0.0.1:PORT)
  phase 1: create both tables in a fresh chdb database under DIR, insert KeeperMap rows
  phase 2: (in a new process, after the server restarted) every row of phase 1 is there,
           insert more, update and delete KeeperMap keys
  phase 3: (after another restart) the rows of both phases are there
With several hosts (a cluster) ClickHouse's config lists each as a <node> (ClickHouse
picks one, and another when it fails), and the restarts between phases are rolling
restarts of every member; the kazoo client that reads back syncs first.
The expected rows are the same whatever the server: ZooKeeper 3.8 passes this.

ReplicatedMergeTree in chdb: CREATE TABLE writes the table's and the replica's metadata
through the server (one big multi, then leader election), and a new process attaches the
table from that metadata (the columns and metadata nodes are compared with the local
definition). Inserts are not possible: chdb's embedded server never sets an interserver
address, so the replica's restarting thread fails with "interserver_http(s)_port required
for replication" (with any server) and the table stays read-only. The suite checks the
metadata nodes instead, read back through the server with kazoo (chdb has no system.zookeeper).

Exit 0 when every check passed, 1 otherwise. The process leaves with os._exit: chdb 4.4
may hang in its atexit handlers after a ReplicatedMergeTree table was attached.
"""
import argparse
import os
import sys
import time

import chdb

KM_ZK = "/keeper_map_tables/km"
RMT_ZK = "/clickhouse/tables/1/rmt"


class Fail(Exception):
    pass


def connect(hosts, d):
    cfg = os.path.join(d, "config.xml")
    nodes = "".join("<node><host>%s</host><port>%s</port></node>" % tuple(h.rsplit(":", 1))
                    for h in hosts.split(","))
    with open(cfg, "w") as f:
        f.write("<clickhouse><zookeeper>%s"
                "<session_timeout_ms>10000</session_timeout_ms></zookeeper>"
                "<keeper_map_path_prefix>/keeper_map_tables</keeper_map_path_prefix>"
                "<logger><level>information</level><log>%s/chdb.log</log></logger>"
                "<macros><shard>1</shard><replica>r1</replica></macros></clickhouse>" % (nodes, d))
    return chdb.connect("file:%s/db?config-file=%s" % (d, cfg))


def q(cur, sql):
    cur.execute(sql)
    return [tuple(r) for r in cur.fetchall()]


def eq(got, want, what):
    if got != want:
        raise Fail("%s: got %r, want %r" % (what, got, want))


def retry_eq(cur, sql, want, what, timeout=30.0):
    """Right after a restart of the server ClickHouse may still be reconnecting."""
    end = time.time() + timeout
    got, err = None, None
    while time.time() < end:
        try:
            got = q(cur, sql)
            if got == want:
                return
        except Exception as e:  # noqa: BLE001 - keep trying until the deadline
            err = e
        time.sleep(0.3)
    raise Fail("%s: got %r (last error %r), want %r" % (what, got, err, want))


ZK = None   # a kazoo client: reads back through the server what ClickHouse wrote


def zk_children(cur, path):
    ZK.sync(path)
    return sorted(ZK.get_children(path)) if ZK.exists(path) else []


def zk_value(cur, path, name):
    p = path + "/" + name
    ZK.sync(p)
    return ZK.get(p)[0].decode("utf-8", "replace") if ZK.exists(p) else None


RMT_NODES = ["alter_partition_version", "block_numbers", "blocks", "columns", "leader_election", "log",
             "metadata", "mutations", "nonincrement_block_numbers", "quorum", "replicas", "table_shared_id",
             "temp"]


def check_rmt(cur):
    kids = zk_children(cur, RMT_ZK)
    missing = [n for n in RMT_NODES if n not in kids]
    if missing:
        raise Fail("ReplicatedMergeTree nodes missing under %s: %r (has %r)" % (RMT_ZK, missing, kids))
    cols = zk_value(cur, RMT_ZK, "columns") or ""
    if "`k` UInt64" not in cols or "`v` UInt64" not in cols:
        raise Fail("ReplicatedMergeTree columns node: %r" % cols)
    eq(zk_children(cur, RMT_ZK + "/replicas"), ["r1"], "ReplicatedMergeTree replicas")
    rk = zk_children(cur, RMT_ZK + "/replicas/r1")
    for n in ("columns", "metadata", "queue", "log_pointer", "parts", "flags", "host", "is_lost"):
        if n not in rk:
            raise Fail("replica node %s missing (has %r)" % (n, rk))
    eq(q(cur, "SELECT zookeeper_path, replica_name, total_replicas FROM system.replicas WHERE table = 'rmt'"),
       [(RMT_ZK, "r1", 1)], "system.replicas")


def phase1(cur):
    q(cur, "CREATE TABLE km (k String, v String) ENGINE=KeeperMap('/km') PRIMARY KEY k")
    q(cur, "INSERT INTO km VALUES ('a','1'),('b','2'),('c','3')")
    q(cur, "INSERT INTO km SELECT toString(number), repeat('x', number % 50) FROM numbers(100)")
    eq(q(cur, "SELECT count() FROM km"), [(103,)], "KeeperMap rows")
    eq(q(cur, "SELECT v FROM km WHERE k = '49'"), [("x" * 49,)], "KeeperMap point read")
    # every row is a node under the table's data path, read back through the server
    eq(len(zk_children(cur, KM_ZK + "/data")), 103, "KeeperMap data nodes")
    q(cur, "CREATE TABLE rmt (k UInt64, v UInt64) ENGINE = ReplicatedMergeTree("
           "'/clickhouse/tables/{shard}/rmt', '{replica}') ORDER BY k")
    check_rmt(cur)


def phase2(cur):
    retry_eq(cur, "SELECT count() FROM km", [(103,)], "KeeperMap rows after a restart")
    q(cur, "INSERT INTO km VALUES ('a','one'),('d','4')")
    q(cur, "ALTER TABLE km DELETE WHERE k = 'b'")
    q(cur, "ALTER TABLE km UPDATE v = 'three' WHERE k = 'c'")
    eq(q(cur, "SELECT k, v FROM km WHERE k IN ('a','b','c','d') ORDER BY k"),
       [("a", "one"), ("c", "three"), ("d", "4")], "KeeperMap after insert/update/delete")
    check_rmt(cur)


def phase3(cur):
    retry_eq(cur, "SELECT k, v FROM km WHERE k IN ('a','b','c','d') ORDER BY k",
             [("a", "one"), ("c", "three"), ("d", "4")], "KeeperMap after a second restart")
    eq(q(cur, "SELECT count(), sum(length(v)) FROM km"),
       [(103, sum(i % 50 for i in range(100)) + len("one") + len("three") + 1)], "KeeperMap totals")
    eq(len(zk_children(cur, KM_ZK + "/data")), 103, "KeeperMap data nodes after a second restart")
    check_rmt(cur)
    q(cur, "DROP TABLE km SYNC")
    eq(zk_children(cur, KM_ZK + "/data"), [], "KeeperMap data removed by DROP")


def main():
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--hosts", help="the connect string")
    g.add_argument("--port", type=int, help="127.0.0.1:PORT")
    ap.add_argument("--dir", required=True)
    ap.add_argument("--phase", type=int, required=True, choices=(1, 2, 3))
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    t = time.time()
    rc = 0
    try:
        global ZK
        from kazoo.client import KazooClient
        hosts = a.hosts or "127.0.0.1:%d" % a.port
        ZK = KazooClient(hosts=hosts, timeout=10)
        ZK.start(timeout=15)
        c = connect(hosts, a.dir)
        cur = c.cursor()
        {1: phase1, 2: phase2, 3: phase3}[a.phase](cur)
        print("chdb: phase %d ok [%.1f s]" % (a.phase, time.time() - t))
    except Fail as e:
        print("chdb: phase %d FAILED: %s" % (a.phase, e))
        rc = 1
    except Exception as e:  # noqa: BLE001 - a ClickHouse error is a failure of the suite
        print("chdb: phase %d FAILED with %s: %s" % (a.phase, type(e).__name__, str(e).splitlines()[0]))
        rc = 1
    sys.stdout.flush()
    os._exit(rc)


if __name__ == "__main__":
    main()
