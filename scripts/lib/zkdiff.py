#!/usr/bin/env python3
"""Differential driver: one seeded sequence of ZooKeeper client requests, spoken in the
raw wire protocol, against any ZooKeeper-protocol server; the log of every reply and
watch event, normalised so that two servers' logs compare byte for byte.

usage:
  zkdiff.py run --port P --seed S --ops N --out RUN.json [--pid PID] [--expiries K]
  zkdiff.py normtree RUN.json DUMP.jsonl OUT.jsonl
  zkdiff.py compare A.json B.json [--trees A.jsonl B.jsonl] [--labels A B]

run: sessions connect and reconnect, and every request goes out one at a time, in one
global order chosen by random.Random(seed) alone (never by a reply), so the zxids are the
same on any server that assigns them as ZooKeeper does. Every reply is decoded field by
field (header xid, zxid, error code, body) and recorded in the log of its session, in the
order the session's socket delivered it, together with the watch events that came on
that socket. Events of one session are only read from that session's socket, so the
order of events relative to replies within a session is exact. With --pid, the server is
sent SIGTERM at the end while the remaining sessions are still open, so their ephemeral
nodes stay in the data directory.

Normalisation (done while running):
  - session ids: replaced by S0, S1, ... in the order the server handed them out
    (connect replies); ephemeralOwner values become those labels;
  - ctime/mtime: a time must be the same for every node that carries the same zxid
    (czxid for ctime, mzxid for mtime), non-decreasing with the zxid and inside the
    wall-clock window of the run; it is then recorded as "@zxid". A violation is a
    divergence of its own (listed under "time_errors");
  - the lists of children and of ephemerals are sorted (ZooKeeper returns a hash order);
  - session passwords are not compared (random), timeouts are.

Workload per op (weights in WEIGHTS): create/create2/createContainer/createTTL with every
mode, incl. invalid modes, TTLs and ACLs; delete and setData with right, wrong and any
version; exists/getData/getChildren/getChildren2 with and without watches; getACL,
setACL; multi (all-or-nothing, failing at a random op, empty) and multiRead; sync;
getEphemerals; getAllChildrenNumber; addWatch (persistent, persistent recursive);
checkWatches/removeWatches; addAuth digest (alice, bob, super, wrong password); whoAmI;
closeSession; disconnect and reconnect with setWatches/setWatches2 carrying the
relativeZxid (events missed while away fire on reconnect); reconnect with a wrong
password; session expiry (a short-timeout session with an ephemeral node stops pinging,
another session waits for the ephemeral's NodeDeleted event: a barrier, so the expiry's
zxid is the same on every server); invalid paths.

Exit status: run 0 when the run completed; compare 0 identical, 1 different.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

OPS = {
    "notification": 0, "create": 1, "delete": 2, "exists": 3, "getData": 4, "setData": 5,
    "getACL": 6, "setACL": 7, "getChildren": 8, "sync": 9, "ping": 11, "getChildren2": 12,
    "check": 13, "multi": 14, "create2": 15, "checkWatches": 17, "removeWatches": 18,
    "createContainer": 19, "createTTL": 21, "multiRead": 22, "auth": 100,
    "setWatches": 101, "getEphemerals": 103, "getAllChildrenNumber": 104,
    "setWatches2": 105, "addWatch": 106, "whoAmI": 107, "closeSession": -11, "error": -1,
}
OPNAME = {v: k for k, v in OPS.items()}
PING_XID, AUTH_XID, SETWATCHES_XID, NOTIF_XID = -2, -4, -8, -1
READ, WRITE, CREATE, DELETE, ADMIN, ALL = 1, 2, 4, 8, 16, 31


def digest(user, pw):
    return "%s:%s" % (user, base64.b64encode(hashlib.sha1(("%s:%s" % (user, pw)).encode()).digest()).decode())


ALICE, BOB = ("alice", "alice-pw"), ("bob", "bob-pw")
AUTHS = [("digest", "alice:alice-pw"), ("digest", "bob:bob-pw"), ("digest", "super:superpw"),
         ("digest", "alice:wrong-pw")]
OPEN = [(ALL, "world", "anyone")]
ACLS = [  # (weight, acl list); the invalid ones are answered InvalidACL
    (60, OPEN),
    (4, [(READ, "world", "anyone")]),
    (4, [(READ | WRITE | CREATE | ADMIN, "world", "anyone")]),
    (4, [(ALL, "digest", digest(*ALICE)), (READ, "world", "anyone")]),
    (3, [(READ | WRITE, "digest", digest(*BOB)), (READ | CREATE, "world", "anyone")]),
    (3, [(ALL, "auth", "")]),
    (3, [(ALL, "ip", "127.0.0.1")]),
    (2, [(READ, "ip", "10.0.0.0/8"), (ALL, "world", "anyone")]),
    (2, [(ALL, "world", "anyone"), (ALL, "world", "anyone")]),
    (1, [(ADMIN, "world", "anyone")]),
    (1, []),
    (1, [(ALL, "digest", "alice")]),
    (1, [(ALL, "ip", "300.1.2.3")]),
    (1, [(ALL, "world", "someone")]),
    (1, [(ALL, "nosuchscheme", "x")]),
]
NAMES = "abcd"
BAD_PATHS = ["/t/a/", "t/a", "/t//a", "/t/./a", "/t/../a", "", "/t/a\u0000b", "/zookeeper/config",
             "/zookeeper", "/zookeeper/quota/x"]


class Short(Exception):
    pass


class W:
    def __init__(self):
        self.b = bytearray()

    def int(self, v):
        self.b += struct.pack(">i", v)
        return self

    def long(self, v):
        self.b += struct.pack(">q", v)
        return self

    def bool(self, v):
        self.b += b"\x01" if v else b"\x00"
        return self

    def buf(self, v):
        if v is None:
            return self.int(-1)
        self.int(len(v))
        self.b += v
        return self

    def str(self, s):
        return self.buf(None if s is None else s.encode("utf-8", "surrogatepass"))

    def strs(self, items):
        self.int(len(items))
        for s in items:
            self.str(s)
        return self

    def acls(self, acls):
        self.int(len(acls))
        for perms, scheme, ident in acls:
            self.int(perms).str(scheme).str(ident)
        return self


class R:
    def __init__(self, b):
        self.b, self.o = b, 0

    def left(self):
        return len(self.b) - self.o

    def _take(self, fmt, n):
        if self.o + n > len(self.b):
            raise Short()
        v = struct.unpack_from(fmt, self.b, self.o)[0]
        self.o += n
        return v

    def int(self):
        return self._take(">i", 4)

    def long(self):
        return self._take(">q", 8)

    def bool(self):
        return self._take(">B", 1)

    def buf(self):
        n = self.int()
        if n < 0:
            return None
        if self.o + n > len(self.b):
            raise Short()
        v = bytes(self.b[self.o:self.o + n])
        self.o += n
        return v

    def str(self):
        v = self.buf()
        return None if v is None else v.decode("utf-8", "replace")

    def strs(self):
        n = self.int()
        if n < 0:
            return None
        if n > self.left():
            raise Short()
        return [self.str() for _ in range(n)]

    def acls(self):
        n = self.int()
        if n < 0:
            return None
        if n > self.left():
            raise Short()
        return [[self.int(), self.str(), self.str()] for _ in range(n)]


def b64(v):
    return None if v is None else base64.b64encode(v).decode()


class Norm:
    """Session-id labels and the zxid -> time consistency check of one run."""

    def __init__(self):
        self.sessions = {}   # id -> label
        self.times = {}      # zxid -> ms
        self.errors = []
        self.t0 = int(time.time() * 1000) - 2000
        self.t1 = None

    def session(self, sid):
        if sid == 0:
            return 0
        if sid not in self.sessions:
            return "?%x" % (sid & (2**64 - 1))
        return self.sessions[sid]

    def new_session(self, sid):
        if sid != 0 and sid not in self.sessions:
            self.sessions[sid] = "S%d" % len(self.sessions)
        return self.session(sid)

    def time(self, zxid, t, what):
        if zxid == 0 and t == 0:
            return "@0"
        old = self.times.get(zxid)
        if old is None:
            self.times[zxid] = t
            now = int(time.time() * 1000) + 2000
            if t < self.t0 or t > now:
                self.errors.append("%s %d of zxid %#x is outside the run's wall-clock window [%d, %d]"
                                   % (what, t, zxid, self.t0, now))
        elif old != t:
            self.errors.append("%s of zxid %#x is %d here and %d elsewhere" % (what, zxid, t, old))
            return "BAD %d" % t
        return "@%d" % zxid

    def stat(self, r):
        czxid, mzxid, ctime, mtime = r.long(), r.long(), r.long(), r.long()
        version, cversion, aversion = r.int(), r.int(), r.int()
        eph, dlen, nch, pzxid = r.long(), r.int(), r.int(), r.long()
        return {"czxid": czxid, "mzxid": mzxid, "ctime": self.time(czxid, ctime, "ctime"),
                "mtime": self.time(mzxid, mtime, "mtime"), "version": version, "cversion": cversion,
                "aversion": aversion, "ephemeralOwner": self.session(eph), "dataLength": dlen,
                "numChildren": nch, "pzxid": pzxid}

    def finish(self):
        self.t1 = int(time.time() * 1000)
        last = -1
        for z in sorted(self.times):
            t = self.times[z]
            if t < last:
                self.errors.append("time of zxid %#x (%d) is before the time of an earlier zxid (%d)" % (z, t, last))
            last = max(last, t)


class Sess:
    def __init__(self, label):
        self.label = label        # slot label in the driver's own numbering ("c3")
        self.sock = None
        self.buf = bytearray()
        self.sid = 0
        self.passwd = b"\0" * 16
        self.timeout = 0
        self.xid = 0
        self.last_zxid = 0
        self.last_sent = 0.0
        self.log = []
        self.auths = []
        self.watches = {"data": set(), "exist": set(), "child": set(), "persistent": set(), "recursive": set()}
        self.state = "new"        # new | open | away | closed | expired


def read_frame(s, deadline):
    while True:
        if len(s.buf) >= 4:
            n = struct.unpack_from(">i", s.buf, 0)[0]
            if n < 0 or n > 64 << 20:
                raise RuntimeError("%s: bad frame length %d" % (s.label, n))
            if len(s.buf) >= 4 + n:
                f = bytes(s.buf[4:4 + n])
                del s.buf[:4 + n]
                return f
        left = deadline - time.time()
        if left <= 0:
            return "timeout"
        r, _, _ = select.select([s.sock], [], [], left)
        if not r:
            continue
        try:
            c = s.sock.recv(1 << 20)
        except OSError:
            c = b""
        if not c:
            return None
        s.buf += c


class Driver:
    def __init__(self, port, seed, nops, expiries):
        self.port = port
        self.rnd = random.Random(seed)
        self.nops = nops
        self.expiries = expiries
        self.norm = Norm()
        self.sessions = []
        self.g = 0                 # global request counter
        self.oplog = []            # the requests in global order
        self.nexp = 0
        self.stats = {}

    # ---- plumbing -----------------------------------------------------------------
    def connect(self, s, sid=0, passwd=None, timeout=None, record=True):
        if s.sock is not None:
            s.sock.close()
        s.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        s.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.buf = bytearray()
        s.xid = 0
        w = W().int(0).long(s.last_zxid).int(timeout if timeout is not None else s.timeout)
        w.long(sid).buf(passwd if passwd is not None else b"\0" * 16).bool(False)
        s.sock.sendall(struct.pack(">i", len(w.b)) + w.b)
        s.last_sent = time.time()
        self.g += 1
        self.oplog.append({"g": self.g, "s": s.label, "op": "connect", "sid": self.norm.session(sid),
                           "timeout": timeout if timeout is not None else s.timeout,
                           "bad_passwd": passwd is not None and passwd != s.passwd})
        f = read_frame(s, time.time() + 15)
        if f is None or f == "timeout":
            entry = {"g": self.g, "connect": "no reply" if f is None else "timeout"}
            s.log.append(entry)
            s.state = "closed"
            return None
        r = R(f)
        proto, to, nsid, pw = r.int(), r.int(), r.long(), r.buf()
        ro = r.bool() if r.left() > 0 else None
        lab = self.norm.new_session(nsid)
        s.log.append({"g": self.g, "connect": {"protocolVersion": proto, "timeout": to, "session": lab,
                                               "passwdLength": len(pw or b""), "readOnly": ro,
                                               "trailing": r.left()}})
        if nsid == 0:
            s.state = "expired"
            return None
        s.sid, s.passwd, s.timeout, s.state = nsid, pw, to, "open"
        return lab

    def send(self, s, xid, op, body):
        w = W().int(xid).int(op)
        w.b += body
        s.sock.sendall(struct.pack(">i", len(w.b)) + w.b)
        s.last_sent = time.time()

    def event(self, s, r):
        typ, state, path = r.int(), r.int(), r.str()
        s.log.append({"event": typ, "state": state, "path": path})
        wt = s.watches
        if typ in (2, 3):
            wt["data"].discard(path)
            wt["exist"].discard(path)
        if typ == 1:
            wt["exist"].discard(path)
        if typ in (2, 4):
            wt["child"].discard(path)

    def wait_reply(self, s, xid, timeout=30.0, log=True):
        """Read s's socket until the reply to xid; log events and that reply."""
        deadline = time.time() + timeout
        while True:
            f = read_frame(s, deadline)
            if f is None or f == "timeout":
                if log:
                    s.log.append({"g": self.g, "lost": "connection closed" if f is None else "timeout"})
                s.state = "closed" if f is None else s.state
                return None
            r = R(f)
            rxid, zxid, err = r.int(), r.long(), r.int()
            if rxid == NOTIF_XID:
                self.event(s, r)
                continue
            if rxid != xid:
                s.log.append({"g": self.g, "unexpected_xid": rxid, "want": xid, "zxid": zxid, "err": err})
                continue
            if zxid > 0 and rxid != PING_XID:
                s.last_zxid = max(s.last_zxid, zxid)
            return rxid, zxid, err, r

    def request(self, s, op, body, decode, xid=None, summary=None):
        if xid is None:
            s.xid += 1
            xid = s.xid
        self.g += 1
        req = {"g": self.g, "s": s.label, "op": op}
        if summary:
            req.update(summary)
        self.oplog.append(req)
        self.stats[op] = self.stats.get(op, 0) + 1
        try:
            self.send(s, xid, OPS[op], body)
        except OSError as e:
            s.log.append({"g": self.g, "op": op, "send_failed": str(e)})
            s.state = "closed"
            return None
        rep = self.wait_reply(s, xid)
        if rep is None:
            return None
        rxid, zxid, err, r = rep
        entry = {"g": self.g, "op": op, "xid": rxid, "zxid": zxid, "err": err}
        if summary:
            entry["req"] = summary
        if r.left() > 0:
            try:
                entry["body"] = decode(r, err)
            except Short:
                entry["undecodable"] = True
            if r.left() > 0:
                entry["trailing"] = base64.b64encode(bytes(r.b[r.o:])).decode()
        s.log.append(entry)
        return entry

    def ping(self, s, log):
        """A ping read to its reply: every event sent before it is then in s.log."""
        self.send(s, PING_XID, OPS["ping"], b"")
        if log:
            self.g += 1
            self.oplog.append({"g": self.g, "s": s.label, "op": "ping"})
        rep = self.wait_reply(s, PING_XID, log=log)
        if rep is not None and log:
            s.log.append({"g": self.g, "op": "ping", "xid": rep[0], "zxid": rep[1], "err": rep[2]})

    def keepalive(self):
        now = time.time()
        for s in self.sessions:
            if s.state == "open" and now - s.last_sent > s.timeout / 4000.0:
                self.ping(s, log=False)

    # ---- decoders ------------------------------------------------------------------
    def d_stat(self, r, err):
        return {"stat": self.norm.stat(r)}

    def d_path(self, r, err):
        return {"path": r.str()}

    def d_path_stat(self, r, err):
        return {"path": r.str(), "stat": self.norm.stat(r)}

    def d_data(self, r, err):
        return {"data": b64(r.buf()), "stat": self.norm.stat(r)}

    def d_acl(self, r, err):
        return {"acl": r.acls(), "stat": self.norm.stat(r)}

    def d_children(self, r, err):
        c = r.strs()
        return {"children": sorted(c) if c is not None else None}

    def d_children2(self, r, err):
        c = r.strs()
        return {"children": sorted(c) if c is not None else None, "stat": self.norm.stat(r)}

    def d_int(self, r, err):
        return {"value": r.int()}

    def d_none(self, r, err):
        return {}

    def d_whoami(self, r, err):
        n = r.int()
        return {"clientInfo": sorted([r.str(), r.str()] for _ in range(max(n, 0)))}

    def d_multi(self, r, err):
        out = []
        while True:
            typ, done, e = r.int(), r.bool(), r.int()
            if done:
                out.append({"end": [typ, e]})
                return {"results": out}
            if typ == OPS["error"]:
                out.append({"type": typ, "err": e, "errResult": r.int()})
            elif typ == OPS["create"]:
                out.append({"type": typ, "err": e, "path": r.str()})
            elif typ in (OPS["create2"], OPS["createContainer"], OPS["createTTL"]):
                out.append({"type": typ, "err": e, "path": r.str(), "stat": self.norm.stat(r)})
            elif typ == OPS["setData"]:
                out.append({"type": typ, "err": e, "stat": self.norm.stat(r)})
            elif typ in (OPS["delete"], OPS["check"]):
                out.append({"type": typ, "err": e})
            elif typ == OPS["getChildren"]:
                c = r.strs()
                out.append({"type": typ, "err": e, "children": sorted(c) if c is not None else None})
            elif typ == OPS["getData"]:
                out.append({"type": typ, "err": e, "data": b64(r.buf()), "stat": self.norm.stat(r)})
            else:
                out.append({"type": typ, "err": e, "unknown": True})
                return {"results": out}

    # ---- the workload ----------------------------------------------------------------
    def path(self):
        x = self.rnd.random()
        if x < 0.01:
            return self.rnd.choice(BAD_PATHS)
        if x < 0.03:
            return "/t"
        depth = self.rnd.choice((1, 1, 1, 2, 2, 2, 3))
        p = "/t"
        for _ in range(depth):
            p += "/" + self.rnd.choice(NAMES)
        if x < 0.15:  # a sequential child, guessed
            p += "/s%010d" % self.rnd.randrange(0, 24)
        return p

    def acl(self):
        tot = sum(w for w, _ in ACLS)
        x = self.rnd.randrange(tot)
        for w, a in ACLS:
            if x < w:
                return a
            x -= w
        return OPEN

    def data(self):
        x = self.rnd.random()
        if x < 0.05:
            return None
        if x < 0.10:
            return b""
        if x < 0.13:
            return bytes(self.rnd.getrandbits(8) for _ in range(self.rnd.randrange(900, 1500)))
        return bytes(self.rnd.getrandbits(8) for _ in range(self.rnd.randrange(0, 40)))

    def version(self):
        return self.rnd.choice((-1, -1, -1, 0, 0, 1, 2, 3, 7))

    def create_body(self):
        """(op name, body, summary) of a random create of any kind."""
        path, data, acl = self.path(), self.data(), self.acl()
        x = self.rnd.random()
        if x < 0.70:
            op = self.rnd.choice(("create", "create", "create2"))
            flags = self.rnd.choice((0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 5, 7))
            ttl = None
        elif x < 0.82:
            op, flags, ttl = "createContainer", self.rnd.choice((4, 4, 4, 0)), None
        else:
            op = "createTTL"
            flags = self.rnd.choice((5, 5, 6, 6, 0, 1))
            # a TTL <= 0 only with a TTL mode: ZooKeeper 3.8.0 answers BadArguments there, but
            # with a non-TTL mode it accepts the txn and its SyncThread dies on it
            ttl = self.rnd.choice((3600000, 3600000, 7200000) + ((0, -5) if flags in (5, 6) else ()))
        if flags in (2, 3, 6) and self.rnd.random() < 0.7:
            path = path.rsplit("/", 1)[0] + "/s" if path.count("/") > 1 else path
        w = W().str(path).buf(data).acls(acl).int(flags)
        if ttl is not None:
            w.long(ttl)
        return op, bytes(w.b), {"path": path, "flags": flags, "ttl": ttl, "acl": acl,
                                "data": b64(data)}

    def sub_op(self):
        """One write op of a multi: (type, body bytes, summary)."""
        x = self.rnd.random()
        if x < 0.4:
            op, body, summ = self.create_body()
            return OPS[op], body, dict(summ, op=op)
        if x < 0.6:
            p, v = self.path(), self.version()
            return OPS["delete"], bytes(W().str(p).int(v).b), {"op": "delete", "path": p, "version": v}
        if x < 0.85:
            p, d, v = self.path(), self.data(), self.version()
            return OPS["setData"], bytes(W().str(p).buf(d).int(v).b), {"op": "setData", "path": p, "version": v}
        p, v = self.path(), self.version()
        return OPS["check"], bytes(W().str(p).int(v).b), {"op": "check", "path": p, "version": v}

    def multi_body(self, subs):
        w = W()
        for typ, body, _ in subs:
            w.int(typ).bool(False).int(-1)
            w.b += body
        w.int(-1).bool(True).int(-1)
        return bytes(w.b)

    def op_once(self, s):
        rnd = self.rnd
        x = rnd.random()
        watch = rnd.random() < 0.4
        if x < 0.24:
            op, body, summ = self.create_body()
            dec = self.d_path if op == "create" else self.d_path_stat
            return self.request(s, op, body, dec, summary=summ)
        if x < 0.31:
            p, v = self.path(), self.version()
            return self.request(s, "delete", bytes(W().str(p).int(v).b), self.d_none, summary={"path": p, "version": v})
        if x < 0.43:
            p, d, v = self.path(), self.data(), self.version()
            return self.request(s, "setData", bytes(W().str(p).buf(d).int(v).b), self.d_stat,
                                summary={"path": p, "data": b64(d), "version": v})
        if x < 0.50:
            p = self.path()
            e = self.request(s, "exists", bytes(W().str(p).bool(watch).b), self.d_stat, summary={"path": p, "watch": watch})
            if e and watch:
                s.watches["data" if e["err"] == 0 else "exist"].add(p)
            return e
        if x < 0.58:
            p = self.path()
            e = self.request(s, "getData", bytes(W().str(p).bool(watch).b), self.d_data, summary={"path": p, "watch": watch})
            if e and watch and e["err"] == 0:
                s.watches["data"].add(p)
            return e
        if x < 0.65:
            p = self.path()
            op = rnd.choice(("getChildren", "getChildren2"))
            dec = self.d_children if op == "getChildren" else self.d_children2
            e = self.request(s, op, bytes(W().str(p).bool(watch).b), dec, summary={"path": p, "watch": watch})
            if e and watch and e["err"] == 0:
                s.watches["child"].add(p)
            return e
        if x < 0.68:
            p = self.path()
            return self.request(s, "getACL", bytes(W().str(p).b), self.d_acl, summary={"path": p})
        if x < 0.71:
            p, a, v = self.path(), self.acl(), rnd.choice((-1, -1, 0, 1, 2))
            return self.request(s, "setACL", bytes(W().str(p).acls(a).int(v).b), self.d_stat,
                                summary={"path": p, "acl": a, "version": v})
        if x < 0.79:
            n = rnd.choice((0, 1, 2, 2, 3, 3, 4, 5))
            subs = [self.sub_op() for _ in range(n)]
            return self.request(s, "multi", self.multi_body(subs), self.d_multi,
                                summary={"ops": [c for _, _, c in subs]})
        if x < 0.81:
            subs = []
            for _ in range(rnd.randrange(1, 4)):
                p = self.path()
                t = rnd.choice((OPS["getChildren"], OPS["getData"]))
                subs.append((t, bytes(W().str(p).bool(False).b), {"op": OPNAME[t], "path": p}))
            return self.request(s, "multiRead", self.multi_body(subs), self.d_multi,
                                summary={"ops": [c for _, _, c in subs]})
        if x < 0.82:
            p = self.path()
            return self.request(s, "sync", bytes(W().str(p).b), self.d_path, summary={"path": p})
        if x < 0.83:
            p = rnd.choice(("/", "/t", "/t/a", "/t/b/"))
            e = self.request(s, "getEphemerals", bytes(W().str(p).b), self.d_children, summary={"path": p})
            return e
        if x < 0.84:
            p = rnd.choice(("/", "/t", "/t/a", "/t/b", "/t/c/d", "/zookeeper", "/nope"))
            return self.request(s, "getAllChildrenNumber", bytes(W().str(p).b), self.d_int, summary={"path": p})
        if x < 0.87:
            p, mode = self.path(), rnd.choice((0, 1, 1, 2))
            e = self.request(s, "addWatch", bytes(W().str(p).int(mode).b), self.d_int, summary={"path": p, "mode": mode})
            if e and e["err"] == 0:
                s.watches["persistent" if mode == 0 else "recursive"].add(p)
            return e
        if x < 0.90:
            p = self.path()
            if rnd.random() < 0.5:  # prefer a path this session watches
                for kind in ("data", "child", "persistent", "recursive", "exist"):
                    if s.watches[kind]:
                        p = sorted(s.watches[kind])[rnd.randrange(len(s.watches[kind]))]
                        break
            op, typ = rnd.choice(("checkWatches", "removeWatches", "removeWatches")), rnd.choice((1, 2, 3, 3))
            e = self.request(s, op, bytes(W().str(p).int(typ).b), self.d_none, summary={"path": p, "type": typ})
            if e and e["err"] == 0 and op == "removeWatches":
                kinds = {1: ("child",), 2: ("data", "exist"), 3: ("data", "exist", "child", "persistent", "recursive")}
                for k in kinds[typ]:
                    s.watches[k].discard(p)
            return e
        if x < 0.91:
            scheme, cred = rnd.choice(AUTHS)
            e = self.request(s, "auth", bytes(W().int(0).str(scheme).buf(cred.encode()).b), self.d_none,
                             xid=AUTH_XID, summary={"scheme": scheme, "cred": cred})
            if e and e["err"] == 0:
                s.auths.append((scheme, cred))
            return e
        if x < 0.92:
            return self.request(s, "whoAmI", b"", self.d_whoami)
        if x < 0.925:
            return self.close(s)
        if x < 0.94:
            return self.away(s)
        # the remaining share: reads of fixed paths (root, /zookeeper, /t)
        p = rnd.choice(("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "/t"))
        op = rnd.choice(("getChildren2", "getData", "exists", "getACL"))
        dec = {"getChildren2": self.d_children2, "getData": self.d_data, "exists": self.d_stat, "getACL": self.d_acl}[op]
        body = W().str(p)
        if op != "getACL":
            body.bool(False)
        return self.request(s, op, bytes(body.b), dec, summary={"path": p})

    def close(self, s):
        e = self.request(s, "closeSession", b"", self.d_none)
        s.sock.close()
        s.sock = None
        s.state = "closed"
        return e

    def away(self, s):
        """Drain, then drop the connection without closeSession; reconnect later."""
        self.ping(s, log=True)
        s.sock.close()
        s.sock = None
        s.state = "away"
        self.g += 1
        self.oplog.append({"g": self.g, "s": s.label, "op": "disconnect"})
        return None

    def come_back(self, s):
        if self.rnd.random() < 0.1:  # a wrong password first: refused
            bad = bytes(b ^ 0x5A for b in s.passwd)
            self.connect(s, sid=s.sid, passwd=bad)
            s.state = "away"
        self.connect(s, sid=s.sid, passwd=s.passwd)
        if s.state != "open":
            return
        wt = s.watches
        if self.rnd.random() < 0.5 and not wt["persistent"] and not wt["recursive"]:
            w = W().long(s.last_zxid).strs(sorted(wt["data"])).strs(sorted(wt["exist"])).strs(sorted(wt["child"]))
            op = "setWatches"
        else:
            w = W().long(s.last_zxid).strs(sorted(wt["data"])).strs(sorted(wt["exist"])).strs(sorted(wt["child"]))
            w.strs(sorted(wt["persistent"])).strs(sorted(wt["recursive"]))
            op = "setWatches2"
        if any(wt.values()):
            self.request(s, op, bytes(w.b), self.d_none, xid=SETWATCHES_XID,
                         summary={"relativeZxid": s.last_zxid, "watches": {k: sorted(v) for k, v in wt.items()}})
        for scheme, cred in s.auths:
            self.request(s, "auth", bytes(W().int(0).str(scheme).buf(cred.encode()).b), self.d_none,
                         xid=AUTH_XID, summary={"scheme": scheme, "cred": cred, "resent": True})

    def new_session(self):
        s = Sess("c%d" % len(self.sessions))
        self.sessions.append(s)
        s.timeout = self.rnd.choice((6000, 10000, 20000, 100000))
        self.connect(s)
        return s

    def expire(self):
        """A short-timeout session with an ephemeral stops pinging; another session
        watches that node and waits for its NodeDeleted."""
        obs = [s for s in self.sessions if s.state == "open"]
        if not obs:
            return
        o = self.rnd.choice(obs)
        v = Sess("c%d" % len(self.sessions))
        self.sessions.append(v)
        v.timeout = self.rnd.choice((1000, 2000))
        if self.connect(v) is None:
            return
        eph = "/v%d" % self.nexp
        self.nexp += 1
        self.request(v, "create", bytes(W().str(eph).buf(b"x").acls(OPEN).int(1).b), self.d_path,
                     summary={"path": eph, "flags": 1})
        for _ in range(self.rnd.randrange(0, 4)):
            self.op_once(v)
            if v.state != "open":
                return
        e = self.request(o, "exists", bytes(W().str(eph).bool(True).b), self.d_stat, summary={"path": eph, "watch": True})
        if not e or e["err"] != 0:
            return
        self.g += 1
        self.oplog.append({"g": self.g, "s": v.label, "op": "let expire", "observer": o.label})
        v.state = "expiring"
        deadline = time.time() + 60
        while time.time() < deadline:
            self.keepalive()
            f = read_frame(o, time.time() + 0.2)
            if f is None:
                o.state = "closed"
                break
            if f == "timeout":
                continue
            r = R(f)
            rxid, zxid, err = r.int(), r.long(), r.int()
            if rxid == NOTIF_XID:
                before = len(o.log)
                self.event(o, r)
                ev = o.log[before]
                if ev["event"] == 2 and ev["path"] == eph:
                    break
            else:
                o.log.append({"unexpected_xid": rxid, "zxid": zxid, "err": err})
        else:
            o.log.append({"g": self.g, "expiry": "not observed within 60 s"})
        v.sock.close()
        v.sock = None
        v.state = "expired"
        # the expired session tries to come back: refused
        self.connect(v, sid=v.sid, passwd=v.passwd)
        if v.sock is not None:
            v.sock.close()
            v.sock = None
        v.state = "expired"

    def run(self):
        setup = self.new_session()
        self.request(setup, "create", bytes(W().str("/t").buf(b"root").acls(OPEN).int(0).b), self.d_path,
                     summary={"path": "/t"})
        for _ in range(7):
            self.new_session()
        expiry_at = sorted(self.rnd.randrange(self.nops // 10, self.nops) for _ in range(self.expiries))
        done = 0
        while done < self.nops:
            self.keepalive()
            if expiry_at and done >= expiry_at[0]:
                expiry_at.pop(0)
                for s in self.sessions:
                    if s.state == "away":
                        self.come_back(s)
                self.expire()
                continue
            live = [s for s in self.sessions if s.state in ("open", "away")]
            if len(live) < 8:
                self.new_session()
                continue
            s = self.rnd.choice(live)
            if s.state == "away":
                self.come_back(s)
                continue
            self.op_once(s)
            done += 1
        for s in self.sessions:
            if s.state == "away":
                self.come_back(s)
        for s in self.sessions:
            if s.state == "open":
                self.ping(s, log=True)
        # half of the sessions close, the others stay open (their ephemerals stay on disk)
        for s in self.sessions:
            if s.state == "open" and self.rnd.random() < 0.5:
                self.close(s)
        self.norm.finish()


def cmd_run(a):
    d = Driver(a.port, a.seed, a.ops, a.expiries)
    t = time.time()
    d.run()
    elapsed = time.time() - t
    if a.pid:
        os.kill(a.pid, signal.SIGTERM)
        for _ in range(600):
            try:
                os.kill(a.pid, 0)
            except OSError:
                break
            time.sleep(0.1)
    out = {
        "seed": a.seed, "ops": a.ops, "requests": d.g, "elapsed_s": round(elapsed, 2),
        "op_counts": d.stats,
        "sessions": {s.label: s.log for s in d.sessions},
        "session_ids": {"%d" % k: v for k, v in d.norm.sessions.items()},
        "times": {"%d" % k: v for k, v in d.norm.times.items()},
        "time_errors": d.norm.errors,
        "oplog": d.oplog,
    }
    with open(a.out, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    nerr = sum(1 for s in d.sessions for e in s.log if e.get("err"))
    nev = sum(1 for s in d.sessions for e in s.log if "event" in e)
    print("zkdiff: %d requests (%d ops) over %d sessions in %.1f s: %d error replies, %d watch events, "
          "%d time errors" % (d.g, a.ops, len(d.sessions), elapsed, nerr, nev, len(d.norm.errors)))
    return 0


def cmd_normtree(a):
    """Map session ids and times of a tree dump with the run's own maps."""
    run = json.load(open(a.run))
    sess = {int(k): v for k, v in run["session_ids"].items()}
    times = {int(k): v for k, v in run["times"].items()}
    errors = []
    with open(a.dump) as f, open(a.out, "w") as o:
        for line in f:
            if not line.strip():
                continue
            n = json.loads(line)
            st = n["stat"]
            for tk, zk in (("ctime", "czxid"), ("mtime", "mzxid")):
                z, t = st[zk], st[tk]
                if z == 0 and t == 0:
                    st[tk] = "@0"
                    continue
                old = times.setdefault(z, t)
                if old != t:
                    errors.append("%s: %s %d of zxid %#x, the run saw %d" % (n["path"], tk, t, z, old))
                    st[tk] = "BAD %d" % t
                else:
                    st[tk] = "@%d" % z
            eo = st["ephemeralOwner"]
            if eo:
                st["ephemeralOwner"] = sess.get(eo, "?%x" % (eo & (2**64 - 1)))
            o.write(json.dumps(n, sort_keys=True, ensure_ascii=False) + "\n")
    for e in errors[:20]:
        print("normtree: " + e)
    return 1 if errors else 0


def first_diff(la, lb):
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x != y:
            return i, x, y
    return None


def cmd_compare(a):
    A, B = json.load(open(a.a)), json.load(open(a.b))
    na, nb = a.labels
    bad = 0
    for lab, run in ((na, A), (nb, B)):
        for e in run["time_errors"][:5]:
            print("%s: time error: %s" % (lab, e))
        bad += bool(run["time_errors"])
    if A["oplog"] != B["oplog"]:
        d = first_diff(A["oplog"], B["oplog"])
        print("the request sequences differ at #%d (a divergence earlier changed the workload):\n  %s: %s\n  %s: %s"
              % (d[0], na, json.dumps(d[1]), nb, json.dumps(d[2])))
        bad += 1
    ops = {o["g"]: o for o in A["oplog"]}
    labels = sorted(set(A["sessions"]) | set(B["sessions"]), key=lambda s: int(s[1:]))
    ndiv = 0
    for lab in labels:
        la, lb = A["sessions"].get(lab, []), B["sessions"].get(lab, [])
        d = first_diff(la, lb)
        if d is None:
            continue
        ndiv += 1
        i, x, y = d
        print("\nsession %s: first difference at its entry #%d" % (lab, i))
        print("  %s: %s" % (na, json.dumps(x, ensure_ascii=False)))
        print("  %s: %s" % (nb, json.dumps(y, ensure_ascii=False)))
        g = (x or y or {}).get("g")
        if g is None:  # an event: the next reply of the session bounds it
            for e in la[i:]:
                if "g" in e:
                    g = e["g"]
                    break
        if g is not None:
            path = (ops.get(g) or {}).get("path")
            ctx = [o for o in A["oplog"] if o["g"] <= g and (path is None or o.get("path") == path
                                                             or json.dumps(o).find('"%s"' % path) >= 0)]
            print("  the requests up to #%d%s (last 12):" % (g, " touching %s" % path if path else ""))
            for o in ctx[-12:]:
                print("    " + json.dumps(o, ensure_ascii=False))
    bad += ndiv
    if ndiv:
        # triage: is it the replies, or only the order of the events?
        rep_div, order_only = [], []
        for lab in labels:
            la, lb = A["sessions"].get(lab, []), B["sessions"].get(lab, [])
            if la == lb:
                continue
            ra = [e for e in la if "event" not in e]
            rb = [e for e in lb if "event" not in e]
            if ra != rb:
                d = first_diff(ra, rb)
                rep_div.append("%s (g %s)" % (lab, (d[1] or d[2] or {}).get("g")))
            elif sorted(json.dumps(e, sort_keys=True) for e in la) == sorted(json.dumps(e, sort_keys=True) for e in lb):
                order_only.append(lab)
        print("\ntriage: replies (events aside) differ in %d session(s)%s; %d session(s) differ only in the "
              "order of their events%s" % (len(rep_div), (": " + ", ".join(rep_div[:10])) if rep_div else "",
                                          len(order_only), (": " + ", ".join(order_only[:10])) if order_only else ""))
    if a.trees:
        ta = open(a.trees[0]).read().splitlines()
        tb = open(a.trees[1]).read().splitlines()
        if ta != tb:
            bad += 1
            da = {json.loads(l)["path"]: l for l in ta}
            db = {json.loads(l)["path"]: l for l in tb}
            diff = sorted(p for p in set(da) | set(db) if da.get(p) != db.get(p))
            print("\nfinal trees differ at %d of %d paths; first: %s\n  %s: %s\n  %s: %s"
                  % (len(diff), len(set(da) | set(db)), diff[0], na, da.get(diff[0]), nb, db.get(diff[0])))
        else:
            print("final trees identical (%d nodes)" % len(ta))
    nrep = sum(len(v) for v in A["sessions"].values())
    if bad:
        print("\nDIFFERENT: %d of %d sessions diverge (%d log entries in %s)" % (ndiv, len(labels), nrep, na))
        return 1
    print("identical: %d requests, %d sessions, %d log entries (replies and events)" % (A["requests"], len(labels), nrep))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--ops", type=int, default=10000)
    r.add_argument("--expiries", type=int, default=2)
    r.add_argument("--pid", type=int)
    r.add_argument("--out", required=True)
    n = sub.add_parser("normtree")
    n.add_argument("run")
    n.add_argument("dump")
    n.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--trees", nargs=2)
    c.add_argument("--labels", nargs=2, default=("A", "B"))
    a = ap.parse_args()
    return {"run": cmd_run, "normtree": cmd_normtree, "compare": cmd_compare}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
