#!/usr/bin/env python3
"""kazoo against a ZooKeeper-protocol server: every operation kazoo has, every watch
type, and the recipes (Lock, ReadLock/WriteLock, Semaphore, Election, Barrier,
DoubleBarrier, Counter, Queue, LockingQueue, Party, TreeCache, DataWatch, ChildrenWatch).
Each check states the value ZooKeeper 3.8 gives.

usage: kazoo_suite.py --hosts HOST:PORT[,HOST:PORT...] [--prefix /kz]
       (or --port PORT for 127.0.0.1:PORT)
With several hosts (a cluster) every client of the suite picks one of them (kazoo
shuffles the list), so writes, reads, watches and sessions cross members: a session
that reads what another session wrote first syncs (ZooKeeper promises a client its own
order and, after sync, every write committed before it; nothing about another client's
write before that), which costs a single server nothing.
Prints one line per section; exit 0 when every check passed, 1 at the first failure.
"""
import argparse
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, NoAuthError, NodeExistsError, NoNodeError,
                              NotEmptyError, NoChildrenForEphemeralsError, RolledBackError)
from kazoo.protocol.states import EventType, KazooState
from kazoo.security import make_digest_acl, make_acl, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE

TIMEOUT = 20.0


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def eq(got, want, what):
    if got != want:
        raise Fail("%s: got %r, want %r" % (what, got, want))


def raises(exc, fn, *a, **kw):
    try:
        fn(*a, **kw)
    except exc:
        return
    except Exception as e:  # noqa: BLE001 - report the wrong exception
        raise Fail("%s(%r): raised %r, want %s" % (fn.__name__, a, e, exc.__name__))
    raise Fail("%s(%r): no exception, want %s" % (fn.__name__, a, exc.__name__))


def wait_for(pred, what, timeout=TIMEOUT):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.02)
    raise Fail("timed out waiting for " + what)


def try_acquire(lk, timeout):
    from kazoo.recipe.lock import LockTimeout
    try:
        return lk.acquire(timeout=timeout)
    except LockTimeout:
        return False


def client(hosts, **kw):
    c = KazooClient(hosts=hosts, timeout=10, **kw)
    c.start(timeout=15)
    return c


def sec_ops(zk, P):
    zk.ensure_path(P + "/ops/a/b")
    check(zk.exists(P + "/ops/a/b") is not None, "ensure_path made the path")
    eq(zk.create(P + "/ops/x", b"hello"), P + "/ops/x", "create returns the path")
    data, st = zk.get(P + "/ops/x")
    eq(data, b"hello", "get data")
    eq((st.version, st.cversion, st.aversion, st.numChildren, st.dataLength), (0, 0, 0, 0, 5), "fresh stat")
    eq(st.czxid, st.mzxid, "czxid == mzxid on create")
    eq(st.ctime, st.mtime, "ctime == mtime on create")
    st2 = zk.set(P + "/ops/x", b"world")
    eq(st2.version, 1, "version after set")
    check(st2.mzxid > st.mzxid, "mzxid grows")
    raises(BadVersionError, zk.set, P + "/ops/x", b"v", version=0)
    eq(zk.set(P + "/ops/x", b"v", version=1).version, 2, "versioned set")
    raises(NodeExistsError, zk.create, P + "/ops/x")
    raises(NoNodeError, zk.create, P + "/ops/nope/child")
    raises(NoNodeError, zk.get, P + "/ops/nope")
    eq(zk.exists(P + "/ops/nope"), None, "exists of a missing node")
    path, st = zk.create(P + "/ops/c2", b"z", include_data=True)
    eq((path, st.version, st.dataLength), (P + "/ops/c2", 0, 1), "create2 with stat")
    eq(zk.create(P + "/ops/mp/a/b", b"deep", makepath=True), P + "/ops/mp/a/b", "create makepath")
    # sequential names come from the parent's cversion
    s1 = zk.create(P + "/ops/seq/n-", b"", makepath=True, sequence=True)
    s2 = zk.create(P + "/ops/seq/n-", b"", sequence=True)
    eq((s1[-10:], s2[-10:]), ("0000000000", "0000000001"), "sequential suffixes")
    zk.delete(s1)
    s3 = zk.create(P + "/ops/seq/n-", b"", sequence=True)
    # ZooKeeper 3.8 numbers from the count of creates (2), while the cversion it shows
    # counts the delete too (3, then 4)
    eq(s3[-10:], "0000000002", "sequence number after a delete")
    eq(sorted(zk.get_children(P + "/ops/seq")), ["n-0000000001", "n-0000000002"], "children")
    ch, st = zk.get_children(P + "/ops/seq", include_data=True)
    eq((st.numChildren, st.cversion), (2, 4), "getChildren2 stat (3 creates + 1 delete)")
    raises(NotEmptyError, zk.delete, P + "/ops/seq")
    raises(BadVersionError, zk.delete, P + "/ops/x", version=7)
    zk.delete(P + "/ops/x", version=2)
    zk.delete(P + "/ops/mp", recursive=True)
    eq(zk.exists(P + "/ops/mp"), None, "recursive delete")
    # null value, empty value, 1 MiB - 1 KiB value
    zk.create(P + "/ops/null", None)
    eq(zk.get(P + "/ops/null")[0], None, "a null value reads as None")
    big = bytes(range(256)) * 4000
    zk.create(P + "/ops/big", big)
    eq(zk.get(P + "/ops/big")[0], big, "1 MB value")
    # ephemerals
    e = zk.create(P + "/ops/eph", b"e", ephemeral=True)
    eq(zk.exists(e).ephemeralOwner, zk.client_id[0], "ephemeralOwner is our session")
    raises(NoChildrenForEphemeralsError, zk.create, P + "/ops/eph/child")
    es = zk.create(P + "/ops/es-", b"", ephemeral=True, sequence=True)
    check(es.startswith(P + "/ops/es-"), "ephemeral sequential")
    # sync
    eq(zk.sync(P + "/ops"), P + "/ops", "sync returns the path")
    # transaction: all-or-nothing
    t = zk.transaction()
    t.create(P + "/ops/t1", b"1")
    t.set_data(P + "/ops/c2", b"zz", version=0)
    t.check(P + "/ops/c2", 1)
    t.delete(P + "/ops/es-" + es[-10:])
    res = t.commit()
    eq(res[0], P + "/ops/t1", "multi create result")
    eq(res[1].version, 1, "multi setData result")
    eq(res[2:], [True, True], "multi check/delete results")
    t = zk.transaction()
    t.create(P + "/ops/t2", b"2")
    t.check(P + "/ops/c2", 99)
    t.create(P + "/ops/t3", b"3")
    res = t.commit()
    check(isinstance(res[0], RolledBackError), "first op rolled back: %r" % (res[0],))
    check(isinstance(res[1], BadVersionError), "second op BadVersion: %r" % (res[1],))
    eq(zk.exists(P + "/ops/t2"), None, "failed multi left nothing")
    # a second session sees our writes only after they happened; its own reads after sync
    z2 = client(zk._hosts)
    try:
        zk.set(P + "/ops/c2", b"seen")
        z2.sync(P + "/ops/c2")
        eq(z2.get(P + "/ops/c2")[0], b"seen", "other session reads the write after sync")
        eq(z2.exists(e).ephemeralOwner, zk.client_id[0], "other session sees our ephemeral")
    finally:
        z2.stop()
        z2.close()
    return "ensure_path, create/create2/makepath/sequential/ephemeral, get/set/versions, " \
           "children, delete/recursive, errors, 1 MB value, sync, transaction ok+rollback"


def sec_acl(zk, P, hosts):
    zk.create(P + "/acl", b"")
    alice = make_digest_acl("alice", "alice-pw", all=True)
    zk.create(P + "/acl/alice", b"secret", acl=[alice])
    raises(NoAuthError, zk.get, P + "/acl/alice")
    raises(NoAuthError, zk.get_acls, P + "/acl/alice")   # getACL needs READ or ADMIN
    za = client(hosts, auth_data=[("digest", "alice:alice-pw")])
    try:
        za.sync(P + "/acl/alice")
        acls, st = za.get_acls(P + "/acl/alice")
        eq([(a.perms, a.id.scheme, a.id.id) for a in acls], [(31, "digest", alice.id.id)], "getACL")
        eq(za.get(P + "/acl/alice")[0], b"secret", "alice reads")
        za.set_acls(P + "/acl/alice", [alice, make_acl("world", "anyone", read=True)])
        zk.sync(P + "/acl/alice")
        eq(zk.get(P + "/acl/alice")[0], b"secret", "world may read after setACL")
        eq(zk.get_acls(P + "/acl/alice")[1].aversion, 1, "aversion after setACL (world may read it now)")
        raises(BadVersionError, za.set_acls, P + "/acl/alice", [alice], version=0)
        raises(NoAuthError, zk.set, P + "/acl/alice", b"x")
        # the auth scheme: the creator's ids
        za.create(P + "/acl/auth", b"a", acl=[make_acl("auth", "", all=True)])
        got = za.get_acls(P + "/acl/auth")[0]
        eq([(a.perms, a.id.scheme, a.id.id) for a in got], [(31, "digest", alice.id.id)], "auth ACL expands")
    finally:
        za.stop()
        za.close()
    zk.create(P + "/acl/ro", b"r", acl=READ_ACL_UNSAFE)
    raises(NoAuthError, zk.set, P + "/acl/ro", b"w")
    raises(NoAuthError, zk.create, P + "/acl/ro/c")
    zk.create(P + "/acl/ip", b"i", acl=[make_acl("ip", "127.0.0.1", all=True)])
    eq(zk.get(P + "/acl/ip")[0], b"i", "ip ACL admits 127.0.0.1")
    # super reads everything
    zs = client(hosts, auth_data=[("digest", "super:superpw")])
    try:
        zs.set_acls(P + "/acl/alice", OPEN_ACL_UNSAFE)
        zs.set(P + "/acl/ro", b"super wrote")
    finally:
        zs.stop()
        zs.close()
    zk.sync(P + "/acl/ro")
    eq(zk.get(P + "/acl/ro")[0], b"super wrote", "super may write anywhere")
    return "digest, auth, ip, world read-only, setACL versions, super digest"


def sec_watches(zk, P, hosts):
    zk.create(P + "/w", b"0")
    events = []
    lock = threading.Lock()

    def rec(ev):
        with lock:
            events.append((ev.type, ev.path))

    zk.get(P + "/w", watch=rec)
    zk.get_children(P + "/w", watch=rec)
    zk.exists(P + "/w/new", watch=rec)
    z2 = client(hosts)
    try:
        z2.set(P + "/w", b"1")
        z2.create(P + "/w/new", b"")
        wait_for(lambda: len(events) >= 3, "3 events")
        time.sleep(0.2)
        with lock:
            eq(sorted(events), sorted([(EventType.CHANGED, P + "/w"), (EventType.CREATED, P + "/w/new"),
                                       (EventType.CHILD, P + "/w")]), "data, exist and child events")
            events.clear()
        # one-shot: a second change fires nothing
        z2.set(P + "/w", b"2")
        time.sleep(0.3)
        eq(events, [], "one-shot watches fired once")
        zk.get(P + "/w/new", watch=rec)
        z2.delete(P + "/w/new")
        wait_for(lambda: events, "delete event")
        eq(events, [(EventType.DELETED, P + "/w/new")], "NodeDeleted")
        # DataWatch and ChildrenWatch recipes follow every change
        seen, kids = [], []
        zk.DataWatch(P + "/w", lambda d, s: seen.append(d))
        zk.ChildrenWatch(P + "/w", lambda c: kids.append(sorted(c)))
        for i in range(3):
            z2.set(P + "/w", b"v%d" % i)
            z2.create(P + "/w/k%d" % i, b"")
            wait_for(lambda: seen and seen[-1] == b"v%d" % i, "DataWatch v%d" % i)
            wait_for(lambda: kids and len(kids[-1]) == i + 1, "ChildrenWatch %d" % i)
        eq(kids[-1], ["k0", "k1", "k2"], "ChildrenWatch state")
        # TreeCache: a recursive view
        from kazoo.recipe.cache import TreeCache
        tc = TreeCache(zk, P + "/w")
        tc.start()
        wait_for(lambda: tc.get_data(P + "/w/k2") is not None, "TreeCache loaded")
        z2.create(P + "/w/k2/deep", b"d")
        wait_for(lambda: tc.get_data(P + "/w/k2/deep") is not None, "TreeCache saw a grandchild")
        eq(tc.get_data(P + "/w/k2/deep").data, b"d", "TreeCache data")
        tc.close()
        # ephemerals of a closed session go away with a NodeDeleted
        z3 = client(hosts)
        z3.create(P + "/w/eph", b"", ephemeral=True)
        zk.sync(P + "/w/eph")
        got = []
        zk.exists(P + "/w/eph", watch=lambda ev: got.append(ev.type))
        z3.stop()
        z3.close()
        wait_for(lambda: got, "ephemeral deleted at close")
        eq(got, [EventType.DELETED], "close removes ephemerals")
    finally:
        z2.stop()
        z2.close()
    return "exists/get/getChildren one-shot watches, NodeCreated/Deleted/DataChanged/ChildrenChanged, " \
           "DataWatch, ChildrenWatch, TreeCache, ephemerals at session close"


def sec_recipes(zk, P, hosts):
    others = [client(hosts) for _ in range(3)]
    try:
        # Lock: mutual exclusion across sessions
        inside, maxin, order = [0], [0], []
        mtx = threading.Lock()

        def worker(c, i):
            lk = c.Lock(P + "/lock", "w%d" % i)
            for _ in range(5):
                with lk:
                    with mtx:
                        inside[0] += 1
                        maxin[0] = max(maxin[0], inside[0])
                    time.sleep(0.005)
                    with mtx:
                        inside[0] -= 1
                        order.append(i)

        ts = [threading.Thread(target=worker, args=(c, i)) for i, c in enumerate(others)]
        [t.start() for t in ts]
        [t.join(60) for t in ts]
        eq((maxin[0], len(order)), (1, 15), "Lock: one holder at a time, all 15 acquisitions")
        # Read/Write locks and Semaphore
        rl, wl = others[0].ReadLock(P + "/rw"), others[1].WriteLock(P + "/rw")
        check(rl.acquire(timeout=5), "read lock")
        check(not try_acquire(wl, 0.5), "write lock waits for the reader")
        rl.release()
        check(wl.acquire(timeout=5), "write lock after the reader left")
        wl.release()
        sems = [c.Semaphore(P + "/sem", max_leases=2) for c in others]
        check(sems[0].acquire(timeout=5) and sems[1].acquire(timeout=5), "2 leases")
        check(not try_acquire(sems[2], 0.5), "no third lease")
        sems[0].release()
        check(sems[2].acquire(timeout=5), "a freed lease")
        sems[1].release()
        sems[2].release()
        # Election: exactly one leader, the next one takes over when it leaves
        leaders = []
        stop = threading.Event()

        def lead(i):
            leaders.append(i)
            stop.wait(30)

        e0 = others[0].Election(P + "/elect", "c0")
        t0 = threading.Thread(target=e0.run, args=(lead, 0))
        t0.start()
        wait_for(lambda: leaders == [0], "first leader")
        e1 = others[1].Election(P + "/elect", "c1")
        t1 = threading.Thread(target=e1.run, args=(lead, 1))
        t1.start()
        time.sleep(0.5)
        eq(sorted(e1.contenders()), ["c0", "c1"], "contenders")
        eq(leaders, [0], "one leader while c0 leads")
        e0.cancel()
        stop.set()
        t0.join(10)
        wait_for(lambda: leaders == [0, 1], "leadership passed to c1")
        e1.cancel()
        t1.join(10)
        # Barrier and DoubleBarrier
        b = zk.Barrier(P + "/barrier")
        b.create()
        passed = []
        others[0].sync(P + "/barrier")
        bt = threading.Thread(target=lambda: passed.append(others[0].Barrier(P + "/barrier").wait(20)))
        bt.start()
        time.sleep(0.3)
        eq(passed, [], "Barrier holds")
        b.remove()
        bt.join(20)
        eq(passed, [True], "Barrier released")
        entered = []

        def dbl(c, i):
            d = c.DoubleBarrier(P + "/dbl", 3)
            d.enter()
            entered.append(i)
            d.leave()

        ds = [threading.Thread(target=dbl, args=(c, i)) for i, c in enumerate(others)]
        [t.start() for t in ds]
        [t.join(30) for t in ds]
        eq(sorted(entered), [0, 1, 2], "DoubleBarrier: all three entered and left")
        # Counter: concurrent increments
        def inc(c):
            ctr = c.Counter(P + "/counter")
            for _ in range(20):
                ctr += 1

        cs = [threading.Thread(target=inc, args=(c,)) for c in others]
        [t.start() for t in cs]
        [t.join(60) for t in cs]
        zk.sync(P + "/counter")
        eq(zk.Counter(P + "/counter").value, 60, "Counter after 3 x 20 increments")
        # Queue: FIFO with priorities; LockingQueue: consume-once
        q = zk.Queue(P + "/queue")
        for i in range(5):
            q.put(b"q%d" % i)
        q.put(b"urgent", priority=1)
        others[0].sync(P + "/queue")
        eq([others[0].Queue(P + "/queue").get() for _ in range(6)],
           [b"urgent", b"q0", b"q1", b"q2", b"q3", b"q4"], "Queue order")
        zk.sync(P + "/queue")
        eq(q.get(), None, "empty Queue")
        lq = zk.LockingQueue(P + "/lqueue")
        lq.put_all([b"a", b"b", b"c"])
        got = []
        for c in others:
            cq = c.LockingQueue(P + "/lqueue")
            v = cq.get(5)
            got.append(v)
            check(cq.consume(), "consume")
        eq(sorted(got), [b"a", b"b", b"c"], "LockingQueue hands each entry out once")
        zk.sync(P + "/lqueue")
        eq(len(lq), 0, "LockingQueue empty")
        # Party
        parties = [c.Party(P + "/party", "m%d" % i) for i, c in enumerate(others)]
        [p.join() for p in parties]
        zk.sync(P + "/party")
        eq(len(zk.Party(P + "/party")), 3, "Party members")
        parties[0].leave()
        zk.sync(P + "/party")
        eq(sorted(zk.Party(P + "/party")), ["m1", "m2"], "Party after a leave")
    finally:
        for c in others:
            c.stop()
            c.close()
    return "Lock, ReadLock/WriteLock, Semaphore, Election, Barrier, DoubleBarrier, Counter, Queue, " \
           "LockingQueue, Party"


def sec_session(zk, P, hosts):
    # A process opens a session, creates an ephemeral and goes away without closing it
    # (its socket just closes); a second client takes the session over with its id and
    # password. (With the first connection still open, it would take the session back
    # when the server closes it, and a ZooKeeper leader may drop the new one meanwhile.)
    import subprocess
    child = subprocess.run([sys.executable, "-c", """if True:
        import os, sys
        from kazoo.client import KazooClient
        z = KazooClient(hosts=sys.argv[1], timeout=10)
        z.start(timeout=15)
        z.create(sys.argv[2], b"", ephemeral=True)
        print("%d %s" % (z.client_id[0], z.client_id[1].hex()), flush=True)
        os._exit(0)
        """, hosts, P + "/sess-eph"], capture_output=True, text=True, timeout=60)
    check(child.returncode == 0 and child.stdout.strip(), "the first session: %r" % child.stderr[-300:])
    sid, pw = child.stdout.split()
    sid, pw = int(sid), bytes.fromhex(pw)
    z2 = KazooClient(hosts=hosts, client_id=(sid, pw), timeout=10)
    z2.start(timeout=15)
    eq(z2.client_id[0], sid, "the session moved to a new connection")
    z2.sync(P + "/sess-eph")
    eq(z2.exists(P + "/sess-eph").ephemeralOwner, sid, "its ephemeral is still there")
    z2.stop()   # closeSession
    z2.close()
    wait_for(lambda: zk.exists(P + "/sess-eph") is None, "ephemeral gone after closeSession")
    # server_version / command (four-letter words through kazoo)
    eq(zk.command(b"ruok"), "imok", "ruok")
    check("Zxid" in zk.command(b"srvr"), "srvr has a Zxid line")
    return "session taken over (id + password) after its process left, closeSession, ruok/srvr via kazoo"


def main():
    ap = argparse.ArgumentParser()
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--hosts", help="the connect string")
    g.add_argument("--port", type=int, help="127.0.0.1:PORT")
    ap.add_argument("--prefix", default="/kz")
    a = ap.parse_args()
    hosts = a.hosts or "127.0.0.1:%d" % a.port
    zk = client(hosts)
    zk._hosts = hosts
    P = a.prefix
    if zk.exists(P):
        zk.delete(P, recursive=True)
    zk.create(P, b"")
    t = time.time()
    try:
        for name, fn in (("operations", lambda: sec_ops(zk, P)), ("acl", lambda: sec_acl(zk, P, hosts)),
                         ("watches", lambda: sec_watches(zk, P, hosts)),
                         ("recipes", lambda: sec_recipes(zk, P, hosts)),
                         ("sessions", lambda: sec_session(zk, P, hosts))):
            t0 = time.time()
            what = fn()
            print("kazoo: %-10s ok [%.1f s]: %s" % (name, time.time() - t0, what))
    except Fail as e:
        print("kazoo: FAILED: %s" % e)
        return 1
    except Exception as e:  # noqa: BLE001 - an unexpected client error is a failure too
        import traceback
        where = traceback.extract_tb(e.__traceback__)
        line = [f for f in where if f.filename == __file__][-1]
        print("kazoo: FAILED with %s at line %d (%s): %s" % (type(e).__name__, line.lineno, line.line, e))
        return 1
    finally:
        zk.stop()
        zk.close()
    print("kazoo: all sections passed in %.1f s" % (time.time() - t))
    return 0


if __name__ == "__main__":
    sys.exit(main())
