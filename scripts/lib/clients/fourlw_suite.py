#!/usr/bin/env python3
"""The four-letter words `cons`, `dump` and `envi` against a ZooKeeper-protocol server on
127.0.0.1:PORT, checked line by line against the shape Apache ZooKeeper 3.8.0 prints
(its code: ServerCnxn.dumpConnectionInfo, DumpCommand with ExpiryQueue.dump and
DataTree.dumpEphemerals, Environment.list), with the values a test can know: the
session ids, each connection's last operation and negotiated timeout, the ephemerals,
the expiry dates, the operating system and user. The suite passes against ZooKeeper
itself (`live-server.sh --target zookeeper --suites fourlw`), which keeps it honest.

envi: the java.* and os.memory.* lines describe a JVM; a server that has none may leave
them out (every other line is required, in ZooKeeper's order).

A member of an ensemble answers for its own connections (cons, the connections of dump)
and the whole ensemble's sessions and ephemerals (dump); a follower lists the sessions
in ZooKeeper's learner shape (LearnerSessionTracker: 'Global Sessions(N):', then
'0xSESSION<tab>TIMEOUTms'), the leader and a single server as expiry sets. The member's
role comes from its `srvr` (Mode:).

usage: fourlw_suite.py --port PORT
Prints one line per word; exit 0 when every check passed, 1 at the first failure.
"""
import argparse
import datetime
import os
import platform
import pwd
import re
import socket
import sys
import time

from kazoo.client import KazooClient

TIMEOUT_MS = 10000  # kazoo's default session timeout, within the test servers' bounds


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def word(port, w):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(w.encode())
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out.decode()
            out += d


def java_date(s):
    # Date.toString(): "Mon Dec 07 02:58:47 UTC 2026" (the servers run in UTC here)
    d = datetime.datetime.strptime(s, "%a %b %d %H:%M:%S %Z %Y")
    return d.replace(tzinfo=datetime.timezone.utc).timestamp()


# queued: 0, or 1 while a ping of the client's is in flight (kazoo pings every third of
# its timeout; ZooKeeper 3.8 itself was seen printing queued=1 on a follower).
CONS_FULL = re.compile(
    r"^ /127\.0\.0\.1:(\d+)\[1\]\(queued=([01]),recved=(\d+),sent=(\d+),sid=0x([0-9a-f]+),"
    r"lop=([A-Z0-9]+),est=(\d+),to=(\d+),lcxid=0x([0-9a-f]+),lzxid=0x([0-9a-f]+),"
    r"lresp=(\d+),llat=(\d+),minlat=(\d+),avglat=(\d+),maxlat=(\d+)\)$")
CONS_ASKING = re.compile(r"^ /127\.0\.0\.1:(\d+)\[0\]\(queued=0,recved=1,sent=0\)$")


def check_cons(text, sessions, t0):
    lines = text.split("\n")
    check(lines[-2:] == ["", ""], "cons ends with an empty line: %r" % lines[-3:])
    seen = {}
    asking = 0
    for l in lines[:-2]:
        m = CONS_FULL.match(l)
        if m:
            sid = int(m.group(5), 16)
            check(sid in sessions, "cons: unknown session 0x%x" % sid)
            lop, est, to = m.group(6), int(m.group(7)), int(m.group(8))
            want_lop = sessions[sid]
            check(lop in (want_lop, "PING"), "cons: 0x%x lop=%s, not %s" % (sid, lop, want_lop))
            check(to == TIMEOUT_MS, "cons: 0x%x to=%d" % (sid, to))
            check(t0 - 5000 <= est <= time.time() * 1000 + 5000, "cons: est=%d is not now" % est)
            recved, sent = int(m.group(3)), int(m.group(4))
            check(recved >= 3 and sent >= 3, "cons: recved=%d sent=%d" % (recved, sent))
            minlat, avglat, maxlat = (int(m.group(i)) for i in (13, 14, 15))
            check(minlat <= avglat <= maxlat, "cons: latencies %d/%d/%d" % (minlat, avglat, maxlat))
            seen[sid] = lop
        elif CONS_ASKING.match(l):
            asking += 1
        else:
            raise Fail("cons: line not in ZooKeeper's shape: %r" % l)
    check(set(seen) == set(sessions), "cons: sessions %s" % sorted(seen))
    check(asking == 1, "cons: the asking connection is listed once, [0], recved=1 (%d)" % asking)


def expiry_sets(lines, i, label, elem, horizon_ms):
    """ExpiryQueue.dump at lines[i]: 'LABEL Sets (N)/(M):', then N groups."""
    m = re.match(r"^%s Sets \((\d+)\)/\((\d+)\):$" % label, lines[i])
    check(m, "dump: %r is not '%s Sets (N)/(M):'" % (lines[i], label))
    nsets, nelems = int(m.group(1)), int(m.group(2))
    i += 1
    got = []
    for _ in range(nsets):
        m = re.match(r"^(\d+) expire at (.+):$", lines[i])
        check(m, "dump: %r is not 'N expire at DATE:'" % lines[i])
        at = java_date(m.group(2)) * 1000
        now = time.time() * 1000
        n = int(m.group(1))
        # an empty set may be left by an earlier session, closed since, of up to the
        # servers' maxSessionTimeout (30 s), rounded up to the queue's interval (ZooKeeper:
        # tickTime for sessions, 10 s for connections): a cluster serves several suites
        # in turn (zkCli.sh's 30 s session on a ZooKeeper follower left one at +35.7 s)
        far = horizon_ms if n else max(horizon_ms, 30000 + 10000 + 5000)
        check(now - 60000 <= at <= now + far,
              "dump: %s expire at %s, %+.1f s from now (allowed: -60 to +%.0f s)"
              % (label, m.group(2), (at - now) / 1000, far / 1000))
        for j in range(n):
            e = re.match(elem, lines[i + 1 + j])
            check(e, "dump: %r is not a %s" % (lines[i + 1 + j], label))
            got.append(e.group(1))
        i += 1 + n
    check(len(got) == nelems, "dump: %s Sets count %d, lists %d" % (label, nelems, len(got)))
    return i, got


def learner_sessions(lines, i):
    """LearnerSessionTracker.dumpSessions (an ensemble's follower): 'Global Sessions(N):',
    then N lines 0xSESSION<tab>TIMEOUTms."""
    m = re.match(r"^Global Sessions\((\d+)\):$", lines[i])
    check(m, "dump: %r is not 'Global Sessions(N):'" % lines[i])
    got = []
    for l in lines[i + 1:i + 1 + int(m.group(1))]:
        e = re.match(r"^0x([0-9a-f]+)\t(\d+)ms$", l)
        check(e and int(e.group(2)) == TIMEOUT_MS, "dump: %r is not '0xSESSION<tab>%dms'" % (l, TIMEOUT_MS))
        got.append(e.group(1))
    return i + 1 + len(got), got


def check_dump(text, a_sid, b_sid, ephemerals, follower):
    lines = text.split("\n")
    check(lines[0] == "SessionTracker dump:", "dump: first line %r" % lines[0])
    if follower:
        i, sess = learner_sessions(lines, 1)
    else:
        i, sess = expiry_sets(lines, 1, "Session", r"^\t0x([0-9a-f]+)$", TIMEOUT_MS + 5000)
    check(sorted(int(s, 16) for s in sess) == sorted([a_sid, b_sid]), "dump: sessions %s" % sess)
    check(lines[i] == "ephemeral nodes dump:", "dump: %r" % lines[i])
    check(lines[i + 1] == "Sessions with Ephemerals (1):", "dump: %r" % lines[i + 1])
    check(lines[i + 2] == "0x%x:" % a_sid, "dump: %r" % lines[i + 2])
    paths = lines[i + 3:i + 3 + len(ephemerals)]
    check(sorted(paths) == sorted("\t" + p for p in ephemerals), "dump: ephemerals %s" % paths)
    i += 3 + len(ephemerals)
    check(lines[i] == "Connections dump:", "dump: %r" % lines[i])
    i, conns = expiry_sets(lines, i + 1, "Connections",
                           r"^\tip: /127\.0\.0\.1:\d+ sessionId: 0x([0-9a-f]+)$",
                           TIMEOUT_MS + 25000)
    check(sorted(int(s, 16) for s in conns) == sorted([0, a_sid, b_sid]),
          "dump: connections of %s" % conns)
    check(lines[i:] == [""], "dump: trailing %r" % lines[i:])


ENVI_KEYS = ["zookeeper.version", "host.name", "java.version", "java.vendor", "java.home",
             "java.class.path", "java.library.path", "java.io.tmpdir", "java.compiler",
             "os.name", "os.arch", "os.version", "user.name", "user.home", "user.dir",
             "os.memory.free", "os.memory.max", "os.memory.total"]
JVM_ONLY = {k for k in ENVI_KEYS if k.startswith("java.") or k.startswith("os.memory.")}


def check_envi(text):
    lines = text.split("\n")
    check(lines[0] == "Environment:" and lines[-1] == "", "envi: framing %r" % lines[:1])
    kv = [l.split("=", 1) for l in lines[1:-1]]
    check(all(len(x) == 2 for x in kv), "envi: a line is not key=value")
    keys = [k for k, _ in kv]
    check(keys == [k for k in ENVI_KEYS if k in keys], "envi: keys %s not in ZooKeeper's order" % keys)
    missing = [k for k in ENVI_KEYS if k not in keys and k not in JVM_ONLY]
    check(not missing, "envi: missing %s" % missing)
    v = dict(kv)
    user = pwd.getpwuid(os.getuid())
    arch = {"x86_64": "amd64", "i686": "i386"}.get(platform.machine(), platform.machine())
    want = {"os.name": platform.system(), "os.arch": arch, "os.version": platform.release(),
            "user.name": user.pw_name, "user.home": user.pw_dir, "user.dir": os.getcwd()}
    for k, w in want.items():
        check(v[k] == w, "envi: %s=%r, not %r" % (k, v[k], w))
    check(re.match(r"^3\.8\.\d+-.*, built on .+$", v["zookeeper.version"]),
          "envi: zookeeper.version=%r" % v["zookeeper.version"])
    check(v["host.name"], "envi: empty host.name")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    hosts = "127.0.0.1:%d" % args.port
    t0 = time.time() * 1000
    a = KazooClient(hosts=hosts)
    b = KazooClient(hosts=hosts)
    a.start(20)
    b.start(20)
    try:
        a.ensure_path("/fourlw")   # (a cluster: the suite runs once per member)
        a.create("/fourlw/e1", b"", ephemeral=True)
        a.create("/fourlw/e2", b"", ephemeral=True)
        b.get_children("/fourlw", watch=lambda e: None)
        b.get("/fourlw", watch=lambda e: None)
        a.set("/fourlw", b"x")
        a_sid, b_sid = a.client_id[0], b.client_id[0]
        check_cons(word(args.port, "cons"), {a_sid: "SETD", b_sid: "GETD"}, t0)
        print("fourlw: cons: ok")
        mode = re.search(r"^Mode: (\w+)$", word(args.port, "srvr"), re.M)
        check(mode, "srvr has no Mode line")
        follower = mode.group(1) in ("follower", "observer")
        dump = word(args.port, "dump")
        try:
            check_dump(dump, a_sid, b_sid, ["/fourlw/e1", "/fourlw/e2"], follower)
        except Fail:
            sys.stderr.write("fourlw: the dump checked:\n%s" % dump)
            raise
        print("fourlw: dump: ok (%s)" % mode.group(1))
        check_envi(word(args.port, "envi"))
        print("fourlw: envi: ok")
    except Fail as e:
        print("fourlw: FAIL: %s" % e)
        return 1
    finally:
        a.stop()
        b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
