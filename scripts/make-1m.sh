#!/usr/bin/env bash
# make-1m.sh DIR [--nodes N] [--seed S] [--heap SIZE] [--runs R] [--skip-gen] [--keep-copy]
#
# Builds the 1M-znode ZooKeeper 3.8.0 data directory used by the benchmarks (NOT
# committed: ~8 minutes and ~1.5 GB) and measures how long ZooKeeper itself takes to
# load it:
#
#   1. ../shared/zkgen/zkgen --out DIR --nodes 1000000 --seed 1 --no-verify-restart
#      (skipped with --skip-gen when DIR/data already exists);
#   2. R times (default 2): copies DIR/data to DIR/.zk-load-copy (a started server writes
#      a new snapshot of what it loaded, so the original files are never touched and each
#      run needs a fresh copy), starts ZooKeeper 3.8.0 standalone on 127.0.0.1 (free
#      port, -Xmx6g) on it, waits until it serves, reads `srvr`, stops it;
#   3. writes DIR/zk-load.json (top level = run 1, every run under "runs") with the
#      figures from the server's own log:
#        snapshot_file          "Reading snapshot <file>"
#        snapshot_read_ms       log-timestamp delta from "Reading snapshot" to the
#                               "The digest in the snapshot ..." line (read at the end of
#                               the file): deserialising the snapshot
#        txns_replayed, txn_replay_ms   "<n> txns loaded in <ms> ms" (FileTxnSnapLog)
#        load_total_ms          "Snapshot loaded in <ms> ms, highest zxid is 0x..."
#                               (ZKDatabase.loadDataBase: snapshot + log replay)
#        highest_zxid, digest   from the same line
#        snapshot_taken_ms      "Snapshot taken in <ms> ms" (the snapshot a server writes
#                               right after loading, before it serves)
#        jvm_start_to_ready_s   wall time from `java` exec until `srvr` shows a Zxid (the
#                               server serves: load + post-load snapshot done; `ruok`
#                               answers imok long before, while it is still loading)
#        srvr_zxid, srvr_node_count   from the `srvr` four-letter word
#
# Run it at low priority when the machine is shared:  nice -n 10 scripts/make-1m.sh DIR
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib/zkserver.sh
. "$HERE/lib/zkserver.sh"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

DIR="" NODES=1000000 SEED=1 HEAP=6g SKIPGEN=0 KEEP=0 RUNS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES="$2"; shift 2;;
    --seed) SEED="$2"; shift 2;;
    --heap) HEAP="$2"; shift 2;;
    --runs) RUNS="$2"; shift 2;;
    --skip-gen) SKIPGEN=1; shift;;
    --keep-copy) KEEP=1; shift;;
    -h|--help) usage 0;;
    -*) echo "make-1m: unknown option $1" >&2; usage 2;;
    *) [ -z "$DIR" ] || { echo "make-1m: one DIR only" >&2; usage 2; }; DIR="$1"; shift;;
  esac
done
[ -n "$DIR" ] || { echo "make-1m: DIR is required" >&2; usage 2; }
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "make-1m: --runs must be >= 1" >&2; exit 2; }

ZKGEN="${ZKGEN:-$HERE/../../shared/zkgen/zkgen}"
zk_check_deps

COPY=""
cleanup() {
  local rc=$?
  zk_stop
  if [ -n "$COPY" ] && [ "$KEEP" = 0 ]; then rm -rf "$COPY"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. generate -------------------------------------------------------------------
if [ "$SKIPGEN" = 1 ]; then
  [ -d "$DIR/data/version-2" ] || { echo "make-1m: --skip-gen but $DIR/data/version-2 missing" >&2; exit 2; }
  echo "make-1m: reusing $DIR/data"
else
  [ -x "$ZKGEN" ] || { echo "make-1m: zkgen not found at $ZKGEN (set ZKGEN=...)" >&2; exit 2; }
  echo "make-1m: generating $NODES znodes (seed $SEED) into $DIR (~8 min for 1M)"
  "$ZKGEN" --out "$DIR" --nodes "$NODES" --seed "$SEED" --no-verify-restart --heap "$HEAP"
fi
DIR="$(cd "$DIR" && pwd)"

# ---- 2. start ZooKeeper on a fresh copy, RUNS times ------------------------------
COPY="$DIR/.zk-load-copy"
RUN_JSONS=()
for run in $(seq 1 "$RUNS"); do
  rm -rf "$COPY"; mkdir -p "$COPY"
  cp -a --sparse=always "$DIR/data" "$COPY/data"
  sync
  zk_init_dir "$COPY" "$COPY/data" "snapCount=100000"
  T0=$(date +%s.%N)
  zk_start "$COPY" "$HEAP"
  echo "make-1m: run $run/$RUNS: ZooKeeper pid $ZK_PID loading on 127.0.0.1:$ZK_PORT (heap $HEAP) ..."
  if ! zk_wait_ready 900; then
    echo "make-1m: ZooKeeper did not come up; last log lines:" >&2
    tail -20 "$COPY/zookeeper.log" >&2
    exit 1
  fi
  T1=$(date +%s.%N)
  SRVR=$(zk_4lw srvr)
  for _ in $(seq 1 100); do grep -q "Snapshot taken in" "$COPY/zookeeper.log" && break; sleep 0.2; done
  zk_stop
  RUN_JSONS+=("$(python3 "$HERE/lib/zk_load_figures.py" "$COPY/zookeeper.log" "$T0" "$T1" "$SRVR")")
  echo "make-1m: run $run: $(python3 -c 'import json,sys;d=json.loads(sys.argv[1]);d.pop("log_lines");print(json.dumps(d))' "${RUN_JSONS[-1]}")"
done

# ---- 3. zk-load.json ---------------------------------------------------------------
python3 - "$DIR/zk-load.json" "$HEAP" "$NODES" "$SEED" "${RUN_JSONS[@]}" <<'PY'
import json, os, platform, sys
out, heap, nodes, seed = sys.argv[1:5]
runs = [json.loads(r) for r in sys.argv[5:]]
res = {"zookeeper_version": "3.8.0", "nodes_param": int(nodes), "seed": int(seed), "heap": heap,
       "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
       "note": "top-level figures = run 1 (fresh copy, files in page cache); runs[] = every run"}
res.update(runs[0])
res["runs"] = [{k: v for k, v in r.items() if k != "log_lines"} for r in runs]
json.dump(res, open(out, "w"), indent=1)
PY
echo "make-1m: wrote $DIR/zk-load.json"
