#!/usr/bin/env bash
# Checks that `keeperkit dump --json` reproduces a big ZooKeeper directory exactly and
# times it next to ZooKeeper's own load time.
#
#   scripts/check-1m.sh [DIR]      (default /work/scratch/zk1m, made by scripts/make-1m.sh)
#
# DIR must hold data/ (ZooKeeper's dataDir), expected.json (zkgen's ground truth) and,
# optionally, zk-load.json (ZooKeeper's own load time, written by make-1m.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/work/scratch/zk1m}
[ -d "$dir/data" ] && [ -f "$dir/expected.json" ] || {
  echo "usage: $0 DIR (with DIR/data and DIR/expected.json; make one with scripts/make-1m.sh DIR)" >&2
  exit 2
}
cargo build --release -q -p keeperkit-tools
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s.%N)
target/release/keeperkit dump "$dir/data" --json > "$out"
end=$(date +%s.%N)
python3 - "$dir/expected.json" "$out" <<'PY'
import json, sys
expected, got = sys.argv[1], open(sys.argv[2])
n = 0
with open(expected) as f:
    for line in f:
        line = line.strip().rstrip(',')
        if not line.startswith('{"acl"'):
            continue
        e, g = json.loads(line), got.readline()
        n += 1
        if not g or json.loads(g) != e:
            print(f"first difference at node {n}:\n expected {e}\n got      {g.strip()}")
            sys.exit(1)
if got.readline():
    print("keeperkit printed more nodes than expected.json holds")
    sys.exit(1)
print(f"identical: {n} znodes")
PY
python3 - "$start" "$end" "$dir" <<'PY'
import json, os, sys
start, end, d = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
print(f"keeperkit dump --json (recover + sort + print): {end - start:.2f} s")
p = os.path.join(d, "zk-load.json")
if os.path.exists(p):
    z = json.load(open(p))
    print(f"ZooKeeper 3.8 load: snapshot {z['snapshot_read_ms']} ms + {z['txns_replayed']} txns "
          f"{z['txn_replay_ms']} ms = {z['load_total_ms']} ms")
PY
