#!/bin/sh
# Seeds fuzz/corpus/<target>/ from the ZooKeeper 3.8.0 fixtures in ../testdata.
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
for t in zk_txn zk_log zk_snapshot; do
    largest=$(ls -S "corpus/$t" | head -n 1)
    echo "$t: $(ls "corpus/$t" | wc -l) seeds, largest $(wc -c < "corpus/$t/$largest") bytes"
done
