#!/usr/bin/env bash
# live-migrate.sh [--keep]
#
# Migrations into and out of `keeperkit serve`, judged by what clients see (kazoo reads
# every node, stat and ACL as super: scripts/zk_dump_tree.py; compared node by node:
# scripts/lib/compare_dumps.py). The tree is scripts/lib/clients/migrate_workload.py's:
# every kind of znode, and a session left open with its ephemerals.
#
#   import   the workload on a fresh Apache ZooKeeper 3.8, stopped with the session
#            open; `keeperkit serve NEW --import THAT_DIR` must serve the tree ZooKeeper
#            serves from that directory, and a sequential create must get the same name
#            on both; started again with --import, it keeps its data (the import is for
#            the first start only)
#   convert  the workload on `keeperkit serve`, stopped with the session open;
#            `keeperkit convert DIR --to zookeeper`; ZooKeeper serving the converted
#            directory and keeperkit serving the original must show the same tree, and
#            the same name for a sequential create
#
# Every server runs with the settings of scripts/lib/target.sh; the session's 30 s
# timeout outlasts each check (about 10 s in all, ZooKeeper's starts included).
# Options: --keep  keep the work dir (dumps, server logs) and print its path
# Environment: KEEPERKIT = the keeperkit binary (default target/release/keeperkit, built
# when missing); KEEPERKIT_PORT_RANGE=LO-HI limits the ports.
# Exit 0 when both migrations show identical trees, 1 when one differs, 2 could not run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib/target.sh
. "$HERE/lib/target.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) KEEP=1; shift;;
    -h|--help) usage 0;;
    *) echo "live-migrate: unknown argument $1" >&2; usage 2;;
  esac
done
zk_check_deps || exit 2
if [ ! -x "$KEEPERKIT" ]; then
  (cd "$ROOT" && cargo build --release -q -p keeperkit-tools) || exit 2
fi

WORK=$(mktemp -d /tmp/live-migrate.XXXXXX)
cleanup() {
  local rc=$?
  tgt_stop
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then echo "live-migrate: work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

WORKLOAD="$HERE/lib/clients/migrate_workload.py"
START=$SECONDS

# serve KIND DIR [serve args...]: a server of KIND on DIR/data (already there, or empty)
serve() {
  local kind="$1" dir="$2"; shift 2
  TGT_SERVE_ARGS=("$@")
  tgt_init "$kind" "$dir" || exit 2
  tgt_start || { echo "live-migrate: $kind on $dir did not start" >&2; exit 2; }
  TGT_SERVE_ARGS=()
}

# read_tree OUT: the served tree, then a sequential create under /mig/seq (its name in
# OUT.seq); the server stops
read_tree() {
  python3 "$HERE/zk_dump_tree.py" --port "$TGT_PORT" --out "$1" 2> "$1.err" \
    || { echo "live-migrate: reading the tree failed: $(cat "$1.err")" >&2; exit 2; }
  python3 "$WORKLOAD" --port "$TGT_PORT" --seq > "$1.seq" \
    || { echo "live-migrate: the sequential create failed" >&2; exit 2; }
  tgt_stop
}

# same LABEL A B: the two reads show the same tree and the same sequential name
BAD=0
same() {
  local out
  if ! out=$(python3 "$HERE/lib/compare_dumps.py" "$2" "$WORK/$2.jsonl" "$3" "$WORK/$3.jsonl"); then
    echo "live-migrate: $1: the trees differ: $out"; BAD=1; return
  fi
  if ! cmp -s "$WORK/$2.jsonl.seq" "$WORK/$3.jsonl.seq"; then
    echo "live-migrate: $1: sequential create: $2 $(cat "$WORK/$2.jsonl.seq"), $3 $(cat "$WORK/$3.jsonl.seq")"
    BAD=1; return
  fi
  local n
  n=$(grep -c '"path":"/mig' "$WORK/$2.jsonl")
  [ "$n" -ge 20 ] || { echo "live-migrate: $1: only $n nodes under /mig"; BAD=1; return; }
  echo "live-migrate: $1: identical ($out; $n nodes under /mig, next sequential $(cat "$WORK/$2.jsonl.seq"))"
}

# --- import: ZooKeeper's directory into keeperkit serve --import
serve zookeeper "$WORK/zk-src"
python3 "$WORKLOAD" --port "$TGT_PORT"
tgt_stop
cp -a "$WORK/zk-src/data" "$WORK/zk-copy"
serve keeperkit "$WORK/imported" --import "$WORK/zk-copy"
grep -q "importing" "$WORK/imported/keeperkit.log" || { echo "live-migrate: no import in the log" >&2; exit 1; }
read_tree "$WORK/imported.jsonl"
serve zookeeper "$WORK/zk-src"
read_tree "$WORK/zookeeper.jsonl"
same import zookeeper imported
serve keeperkit "$WORK/imported" --import "$WORK/zk-copy"
grep -q -- "--import .* ignored" "$WORK/imported/keeperkit.log" \
  || { echo "live-migrate: import: a second start with --import did not leave the data as it was"; BAD=1; }
python3 "$HERE/zk_dump_tree.py" --port "$TGT_PORT" --out "$WORK/imported2.jsonl" 2>/dev/null
tgt_stop
grep -q "\"path\":\"/mig/seq/$(basename "$(cat "$WORK/imported.jsonl.seq")")\"" "$WORK/imported2.jsonl" \
  || { echo "live-migrate: import: the node created after the import is gone after a restart"; BAD=1; }

# --- convert: keeperkit's directory to ZooKeeper's
serve keeperkit "$WORK/kk-src"
python3 "$WORKLOAD" --port "$TGT_PORT"
tgt_stop
mkdir -p "$WORK/converted"
if ! "$KEEPERKIT" convert "$WORK/kk-src/data" "$WORK/converted/data" --to zookeeper > "$WORK/convert.out" 2>&1; then
  echo "live-migrate: convert --to zookeeper failed: $(tail -3 "$WORK/convert.out")"; exit 1
fi
serve keeperkit "$WORK/kk-src"
read_tree "$WORK/keeperkit.jsonl"
serve zookeeper "$WORK/converted"
read_tree "$WORK/converted.jsonl"
same convert keeperkit converted

echo "live-migrate: $((SECONDS - START)) s"
exit "$BAD"
