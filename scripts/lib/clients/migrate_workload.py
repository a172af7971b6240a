#!/usr/bin/env python3
"""A small tree of every kind of znode, written through kazoo to a ZooKeeper-protocol
server on 127.0.0.1:PORT, for the migration checks (scripts/live-migrate.sh): data set
several times, a null value, a digest ACL changed once (aversion), sequential nodes with
one deleted, a container with a child, a TTL node, a deep path, a non-ASCII name, and
two ephemerals of a 30 s session that is left open (the process exits without closing
it, so the server keeps it and its ephemerals until it expires).

usage: migrate_workload.py --port PORT           writes the tree under /mig
       migrate_workload.py --port PORT --seq     one sequential create under /mig/seq,
                                                 prints the name it got
"""
import argparse
import os
import sys

from kazoo.client import KazooClient
from kazoo.protocol.serialization import Create2, long_struct
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl, make_acl


class CreateContainer(Create2):
    """createContainer (opcode 19): kazoo has no call for it; the reply is create2's."""
    type = 19


class CreateTTL(Create2):
    """createTTL (opcode 21): create2's request with the TTL (ms) after the flags."""
    type = 21

    def __new__(cls, path, data, acl, flags, ttl):
        self = super().__new__(cls, path, data, acl, flags)
        self.ttl = ttl
        return self

    def serialize(self):
        return super().serialize() + long_struct.pack(self.ttl)


def raw(client, request):
    result = client.handler.async_result()
    client._call(request, result)
    return result.get(timeout=20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seq", action="store_true")
    a = ap.parse_args()
    c = KazooClient(hosts="127.0.0.1:%d" % a.port, timeout=30)
    c.start(30)
    if a.seq:
        print(c.create("/mig/seq/n-", b"after", sequence=True))
        c.stop()
        return 0
    c.create("/mig", b"root")
    c.create("/mig/data", b"v0")
    for i in range(1, 4):
        c.set("/mig/data", b"v%d" % i * 40)
    # a null value: kazoo sends None as a buffer of length -1
    raw(c, Create2("/mig/null", None, OPEN_ACL_UNSAFE, 0))
    acl = [make_digest_acl("user", "pw", all=True), make_acl("world", "anyone", read=True)]
    c.create("/mig/acl", b"secret", acl=acl)
    c.add_auth("digest", "user:pw")
    c.set_acls("/mig/acl", [make_digest_acl("user", "pw", all=True)])
    c.create("/mig/seq")
    names = [c.create("/mig/seq/n-", b"%d" % i, sequence=True) for i in range(5)]
    c.delete(names[1])
    raw(c, CreateContainer("/mig/cont", b"c", OPEN_ACL_UNSAFE, 4))
    c.create("/mig/cont/child", b"")
    raw(c, CreateTTL("/mig/ttl", b"t", OPEN_ACL_UNSAFE, 5, 3_600_000))
    c.create("/mig/deep/a/b/c", b"deep", makepath=True)
    c.create("/mig/\u00fcn\u00ef/\u65e5", "\u00e9".encode(), makepath=True)
    c.create("/mig/eph")
    c.create("/mig/eph/e1", b"1", ephemeral=True)
    c.create("/mig/eph/e2", b"", ephemeral=True)
    c.create("/mig/eph/s-", b"", ephemeral=True, sequence=True)
    sys.stdout.flush()
    # Leave the session open: no closeSession, the socket just goes away.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
