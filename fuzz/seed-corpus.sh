#!/bin/sh
# Seeds fuzz/corpus/<target>/ for zk_txn, zk_log and zk_snapshot from the ZooKeeper
# 3.8.0 fixtures in ../testdata; keeper_exec with hand-encoded Keeper log entries; and
# ch_tree with ClickHouse Keeper snapshots converted from those fixtures (this builds
# the keeperkit binary) plus the ch_snapshot corpus when there is one.
# The corpus directory is git-ignored; run this once before `cargo +nightly fuzz run`.
set -eu
cd "$(dirname "$0")"
T=../testdata/zookeeper-3.8.0
mkdir -p corpus/zk_txn corpus/zk_log corpus/zk_snapshot
python3 - "$T" <<'PY'
import os, struct, sys
t = sys.argv[1]

def records(path):
    b = open(path, "rb").read()
    pos, out = 16, []
    while pos + 12 <= len(b):
        n = struct.unpack(">i", b[pos + 8:pos + 12])[0]
        if n <= 0 or pos + 12 + n + 1 > len(b):
            break
        out.append((pos, b[pos + 12:pos + 12 + n]))
        pos += 12 + n + 1
    return b, pos, out

seen = set()
for fixture in ["basic", "quorum", "big-values"]:
    d = os.path.join(t, fixture, "data/version-2")
    for name in sorted(os.listdir(d)):
        if not name.startswith("log."):
            continue
        b, end, recs = records(os.path.join(d, name))
        # zk_txn: one payload per (type, multi sub-types, length bucket), small ones only.
        for _, p in recs:
            key = (p[28:32], p[32:36], len(p) // 64)
            if key in seen or len(p) > 4096:
                continue
            seen.add(key)
            open("corpus/zk_txn/%s-%s-%d" % (fixture, name, len(seen)), "wb").write(p)
        # zk_log: the first 20 records and the start of the zero tail, both modes.
        if fixture != "big-values":
            cut = recs[min(20, len(recs) - 1)][0] if len(recs) > 20 else end
            head = b[:cut] + b"\0" * 12
            open("corpus/zk_log/%s-%s-checked" % (fixture, name), "wb").write(b"\0" + head)
            open("corpus/zk_log/%s-%s-fixed" % (fixture, name), "wb").write(b"\1" + head)

snaps = [("basic", "snapshot.0", 0), ("basic", "snapshot.f8", 0), ("quorum", "snapshot.0", 0),
         ("gz", "snapshot.0.gz", 1), ("gz", "snapshot.b9.gz", 1),
         ("snappy", "snapshot.0.snappy", 2), ("snappy", "snapshot.c3.snappy", 2)]
for fixture, name, mode in snaps:
    b = open(os.path.join(t, fixture, "data/version-2", name), "rb").read()
    open("corpus/zk_snapshot/%s-%s" % (fixture, name), "wb").write(bytes([mode]) + b)
PY

# keeper_exec: byte 0 options, byte 1 entry rewriting, then u16 LE length + an app_log
# entry, encoded as KeeperLogEntry::encode writes them.
python3 - corpus/keeper_exec <<'PY'
import os, struct, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)

def s(b):
    if isinstance(b, str): b = b.encode()
    return struct.pack(">i", len(b)) + b
def acls(lst):
    return struct.pack(">i", len(lst)) + b"".join(struct.pack(">i", p) + s(sc) + s(i) for p, sc, i in lst)
OPEN = [(31, "world", "anyone")]
def create(path, data=b"", flags=0, acl=OPEN): return (1, s(path) + s(data) + acls(acl) + struct.pack(">i", flags))
def cine(path, data=b"", flags=0): return (502, create(path, data, flags)[1])
def remove(path, v=-1): return (2, s(path) + struct.pack(">i", v))
def rmr(path, limit=100): return (503, s(path) + struct.pack(">I", limit))
def set_(path, data, v=-1): return (5, s(path) + s(data) + struct.pack(">i", v))
def setacl(path, acl, v=-1): return (7, s(path) + acls(acl) + struct.pack(">i", v))
def check(path, v=-1): return (13, s(path) + struct.pack(">i", v))
def checkne(path, v=-1): return (501, s(path) + struct.pack(">i", v))
def get(path): return (4, s(path) + b"\0")
def lst(path): return (12, s(path) + b"\0")
def sync(path): return (9, s(path))
def auth(cred, scheme="digest"): return (100, struct.pack(">i", 0) + s(scheme) + s(cred))
def close(): return (-11, b"")
def heartbeat(): return (11, b"")
def session_id(timeout=30000): return (997, struct.pack(">qqi", 0, timeout, 1))
def multi(subs, op=14):
    b = b"".join(struct.pack(">i", o) + b"\0" + struct.pack(">i", -1) + body for o, body in subs)
    return (op, b + struct.pack(">i", -1) + b"\1" + struct.pack(">i", -1))

def entry(session, req, xid=1, time=1000, zxid=0):
    op, body = req
    r = struct.pack(">ii", xid, op) + body
    e = struct.pack("<q", session) + struct.pack(">i", len(r)) + r
    return e + struct.pack("<qqBQ", time, zxid, 0, 0)

def seed(name, opts, rewrite, ents):
    b = bytes([opts, rewrite])
    for sess, req in ents:
        e = entry(sess, req)
        b += struct.pack("<H", len(e)) + e
    open(os.path.join(out, name), "wb").write(b)

DIG = [(31, "digest", "u1:fY8FA5+kHGjyR4AEzPu7hmHO0Bg=")]  # any digest id
scripts = {
  "creates": [(1, create("/a", b"x")), (1, create("/a/b", b"y")), (1, create("/a/s-", flags=2)),
              (1, create("/a/s-", flags=2)), (2, create("/a/e", flags=1)), (2, create("/a/es-", flags=3)),
              (1, cine("/a")), (1, cine("/c", b"z")), (1, create("/a/b")), (1, create("/nope/x"))],
  "set-remove": [(1, create("/a", b"1")), (1, set_("/a", b"2")), (1, set_("/a", b"3", 1)),
                 (1, set_("/a", b"4", 7)), (1, set_("/", b"r")), (1, create("/a/b")), (1, remove("/a")),
                 (1, remove("/a/b", 0)), (1, remove("/a", 5)), (1, remove("/a")), (1, remove("/"))],
  "remove-recursive": [(1, create("/t")), (1, create("/t/a")), (1, create("/t/a/b")), (1, create("/t/c")),
                       (1, rmr("/t", 2)), (1, rmr("/t", 4)), (1, rmr("/")), (1, rmr("/keeper"))],
  "multi": [(1, multi([create("/m"), create("/m/s-", flags=2), create("/m/s-", flags=2), set_("/m", b"v"), check("/m", 1)])),
            (1, multi([create("/n"), create("/m"), create("/o")])),
            (1, multi([remove("/m/s-0000000000"), checkne("/m/s-0000000000"), create("/m/s-", flags=2)])),
            (1, multi([rmr("/m", 10), create("/m")])),
            (1, multi([get("/m"), lst("/"), get("/nope")], op=22))],
  "sessions": [(-1, session_id(10000)), (-1, session_id(20000)), (3, create("/e3", flags=1)),
               (4, create("/e4", flags=3)), (4, create("/e4", flags=3)), (3, close()), (4, heartbeat()),
               (4, sync("/")), (4, close()), (3, create("/e3b", flags=1))],
  "auth-acl": [(1, auth(b"u1:pw")), (1, create("/p", b"", 0, [(31, "auth", "")])), (2, set_("/p", b"no")),
               (2, create("/p/c")), (2, auth(b"u1:pw")), (2, set_("/p", b"yes")),
               (1, setacl("/p", [(1, "world", "anyone")])), (2, create("/p/c")), (1, rmr("/p")),
               (2, auth(b"super:pw")), (2, rmr("/p")), (1, auth(b"bad", "ip")), (1, auth(b"a:b:c")),
               (1, create("/q", b"", 0, DIG)), (2, get("/q")), (1, close())],
  "system": [(1, create("/keeper/x")), (1, set_("/keeper", b"x")), (1, check("/keeper/api_version")),
             (1, get("/keeper/config")), (1, remove("/keeper")), (1, create("/keeper"))],
  "ephemeral-parent": [(1, create("/e", flags=1)), (1, create("/e/c")), (2, remove("/e")), (1, close()),
                       (1, create("/e"))],
}
for name, ents in scripts.items():
    seed(name + "-acl", 0, 0, ents)
    seed(name + "-noacl-v5", 1 | 2, 0, ents)
seed("super-new-tree", 4 | 32, 0, scripts["auth-acl"])
seed("no-register", 8, 0, scripts["sessions"])
seed("refuse-system", 16, 0, scripts["system"])
seed("raw-sessions", 0, 1, scripts["sessions"])
PY

# ch_tree: fixtures converted to Keeper snapshots (V6 maps TTL nodes and containers,
# V8 keeps TTL nodes), zstd files (mode 0) and their bodies (mode 1).
mkdir -p corpus/ch_tree
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for fixture in basic crash-seed8; do
    for v in 6 8; do
        out="$tmp/$fixture-v$v"
        cargo run -q --manifest-path ../Cargo.toml -- convert "$T/$fixture/data" "$out" \
            --to clickhouse --lossy --clickhouse-version "$v" > /dev/null
        for f in "$out"/snapshots/snapshot_*.bin.zstd; do
            { printf '\000'; cat "$f"; } > "corpus/ch_tree/$fixture-v$v-zstd"
            { printf '\001'; zstd -dc "$f"; } > "corpus/ch_tree/$fixture-v$v-body"
        done
    done
done
if [ -d corpus/ch_snapshot ]; then
    cp -n corpus/ch_snapshot/* corpus/ch_tree/ 2>/dev/null || true
fi

for t in zk_txn zk_log zk_snapshot keeper_exec ch_tree; do
    largest=$(ls -S "corpus/$t" | head -n 1)
    echo "$t: $(ls "corpus/$t" | wc -l) seeds, largest $(wc -c < "corpus/$t/$largest") bytes"
done
