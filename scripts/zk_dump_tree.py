#!/usr/bin/env python3
"""Dump the whole tree of a running ZooKeeper server as JSON Lines.

usage: zk_dump_tree.py --port PORT [--out FILE] [--expect-zxid ZXID] [--window N]

Prints one znode per line, sorted by the UTF-8 bytes of the path, in exactly the shape of
`keeperkit dump --json` (and of zkgen's expected.json nodes):

  {"path":..., "data": base64 | null, "stat": {czxid, mzxid, pzxid, ctime, mtime, version,
   cversion, aversion, ephemeralOwner, dataLength, numChildren}, "acl": [{perms, scheme, id}]}

The stat is what the client API returns (cversion = 2*stored - numChildren, ephemeralOwner
0 for containers/TTL nodes). The client authenticates as `super:superpw`, so the server
must run with -Dzookeeper.DigestAuthenticationProvider.superDigest=super:g9oN2HttPfn8MMWJZ2r45Np/LIA=
(see scripts/lib/zkserver.sh) to read ACL-protected nodes.

The read is level by level with pipelined getData+getACL (getChildren only where
numChildren > 0). It asks `srvr` for the server's zxid before and after: if the zxid moved
during the read (a session of the loaded data expired, a container was reaped, ...) the
dump is not a consistent picture and the exit status is 3. With --expect-zxid, the zxid
before the read must equal it (the loaded zxid + 1 for our own createSession), otherwise
the server already changed the tree after loading and the exit status is 4.
A summary goes to stderr as one JSON object.
"""
import argparse
import base64
import json
import socket
import sys
import time
from collections import deque

from kazoo.client import KazooClient

SUPER = ("super", "superpw")


def four_letter(port, cmd, timeout=10.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(cmd.encode())
        chunks = []
        while True:
            c = s.recv(65536)
            if not c:
                break
            chunks.append(c)
    return b"".join(chunks).decode("utf-8", "replace")


def server_zxid(port):
    for line in four_letter(port, "srvr").splitlines():
        if line.startswith("Zxid:"):
            return int(line.split(":", 1)[1].strip(), 16)
    raise RuntimeError("no Zxid in srvr output")


def join(parent, child):
    return ("/" + child) if parent == "/" else (parent + "/" + child)


def stat_dict(st):
    # same key order as keeperkit's JsonStat
    return {
        "czxid": st.czxid, "mzxid": st.mzxid, "pzxid": st.pzxid,
        "ctime": st.ctime, "mtime": st.mtime,
        "version": st.version, "cversion": st.cversion, "aversion": st.aversion,
        "ephemeralOwner": st.ephemeralOwner,
        "dataLength": st.dataLength, "numChildren": st.numChildren,
    }


def pipelined(items, start, window):
    """Yields (item, result) in order, keeping up to `window` async requests in flight."""
    pending = deque()
    it = iter(items)
    done = False
    while True:
        while not done and len(pending) < window:
            x = next(it, None)
            if x is None:
                done = True
                break
            pending.append((x, start(x)))
        if not pending:
            return
        x, futs = pending.popleft()
        yield x, [f.get(timeout=300) for f in futs]


def dump_tree(zk, window):
    nodes = {}
    level = ["/"]
    while level:
        parents = []
        for p, ((data, st), (acls, st2)) in pipelined(
                level, lambda p: (zk.get_async(p), zk.get_acls_async(p)), window):
            if tuple(st) != tuple(st2):
                raise RuntimeError("tree changed during the read at %s" % p)
            nodes[p] = {
                "path": p,
                "data": None if data is None else base64.b64encode(data).decode("ascii"),
                "stat": stat_dict(st),
                "acl": [{"perms": a.perms, "scheme": a.id.scheme, "id": a.id.id} for a in acls],
            }
            if st.numChildren:
                parents.append(p)
        nxt = []
        for p, (children,) in pipelined(parents, lambda p: (zk.get_children_async(p),), window):
            if len(children) != nodes[p]["stat"]["numChildren"]:
                raise RuntimeError("tree changed during the read at %s" % p)
            nxt.extend(join(p, c) for c in children)
        level = nxt
    return nodes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", help="output file (default stdout)")
    ap.add_argument("--expect-zxid", help="zxid the server must be at before the read (hex 0x.. or decimal)")
    ap.add_argument("--window", type=int, default=2000)
    args = ap.parse_args()

    # a long session timeout: our own session must not expire while we read
    zk = KazooClient(hosts="127.0.0.1:%d" % args.port, timeout=600.0,
                     auth_data=[("digest", "%s:%s" % SUPER)],
                     connection_retry=None, command_retry=None)
    zk.start(timeout=60)
    t0 = time.time()
    z1 = server_zxid(args.port)
    nodes = dump_tree(zk, args.window)
    z2 = server_zxid(args.port)
    dt = time.time() - t0
    zk.stop()
    zk.close()

    out = open(args.out, "w", encoding="utf-8") if args.out else sys.stdout
    for p in sorted(nodes, key=lambda s: s.encode("utf-8", "surrogatepass")):
        out.write(json.dumps(nodes[p], ensure_ascii=False, separators=(",", ":")) + "\n")
    out.flush()
    if args.out:
        out.close()

    summary = {"node_count": len(nodes), "zxid_before": "0x%x" % z1, "zxid_after": "0x%x" % z2,
               "read_s": round(dt, 3)}
    rc = 0
    if z1 != z2:
        summary["error"] = "the server's zxid moved during the read: not a consistent picture"
        rc = 3
    elif args.expect_zxid is not None and z1 != int(args.expect_zxid, 0):
        summary["error"] = ("the server was at zxid 0x%x before the read, expected %s: it changed the "
                            "tree after loading (session expiry, container/TTL reaping?)" % (z1, args.expect_zxid))
        rc = 4
    print(json.dumps(summary), file=sys.stderr)
    sys.exit(rc)


if __name__ == "__main__":
    main()
