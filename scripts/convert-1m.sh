#!/usr/bin/env bash
# Times `keeperkit convert --to clickhouse` on a big ZooKeeper directory and checks the
# result: `keeperkit dump` of the ClickHouse Keeper directory must equal zkgen's ground
# truth, node for node (null values the conversion reported as stored empty aside).
#
#   scripts/convert-1m.sh [DIR] [RUNS]   (default /work/scratch/zk1m, made by
#                                         scripts/make-1m.sh; RUNS default 3)
#
# Prints each run's wall time (load the ZooKeeper directory: snapshot + log replay, then
# write the Keeper snapshot: V6 body + one zstd-3 frame, fsync), the best and the median.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/work/scratch/zk1m}
runs=${2:-3}
[ -d "$dir/data" ] && [ -f "$dir/expected.json" ] || {
  echo "usage: $0 DIR [RUNS] (with DIR/data and DIR/expected.json; make one with scripts/make-1m.sh DIR)" >&2
  exit 2
}
cargo build --release -q -p keeperkit-tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
times=()
for i in $(seq 1 "$runs"); do
  rm -rf "$work/ch"
  sync
  start=$(date +%s.%N)
  target/release/keeperkit convert "$dir/data" "$work/ch" --to clickhouse --lossy --json > "$work/report.json"
  end=$(date +%s.%N)
  t=$(python3 -c "print(f'{$end - $start:.3f}')")
  times+=("$t")
  echo "run $i: $t s"
done
python3 - "${times[@]}" <<'PY'
import statistics, sys
t = sorted(float(x) for x in sys.argv[1:])
print(f"convert --to clickhouse: best {t[0]:.2f} s, median {statistics.median(t):.2f} s over {len(t)} runs")
PY
ls -l "$work/ch/snapshots"
target/release/keeperkit dump "$work/ch" --json > "$work/ch.jsonl"
python3 - "$dir/expected.json" "$work/ch.jsonl" "$work/report.json" <<'PY'
import json, sys
expected, got, report = sys.argv[1], open(sys.argv[2]), json.load(open(sys.argv[3]))
nulls = {m[0] for m in report["mappings"] if m[1].startswith("null value")}
n = 0
with open(expected) as f:
    for line in f:
        line = line.strip().rstrip(',')
        if not line.startswith('{"acl"'):
            continue
        e, g = json.loads(line), got.readline()
        n += 1
        if e["path"] in nulls:
            assert e["data"] is None, e["path"]
            e["data"] = ""
        if not g or json.loads(g) != e:
            print(f"first difference at node {n}:\n expected {e}\n got      {g.strip()}")
            sys.exit(1)
if got.readline():
    print("keeperkit printed more nodes than expected.json holds")
    sys.exit(1)
print(f"the ClickHouse Keeper directory dumps identically: {n} znodes ({len(nulls)} null values read as empty)")
PY
