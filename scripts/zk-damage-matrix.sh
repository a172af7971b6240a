#!/usr/bin/env bash
# zk-damage-matrix.sh [--fixture NAME] [--no-build] [--keep] [--out JSON] [--docs MD] [CASE...]
#
# What does the real ZooKeeper 3.8.0 do with a damaged copy of a data directory, and what
# does keeperkit do with the same copy? For the `basic` fixture (or --fixture NAME) it makes
# one damaged copy per case (scripts/lib/damage.py; byte-exact parameters are recorded):
#
#   clean  control: undamaged copy
#   a1-a5  newest log's last record torn (file truncated) in its checksum, in its length,
#          mid-payload, just before its 0x42 marker, right after the marker (no padding)
#   b1     one bit flipped in a middle record of the middle log
#   b2     one bit flipped in a middle record of the newest log (one the server replays)
#   c1     the middle log deleted
#   c2     the log holding the first txns after the newest snapshot deleted (a gap)
#   d1     a zero-length log.<zxid> newer than every log
#   e1     newest snapshot overwritten with garbage;  e2  one bit flipped in its middle
#   f1     newest snapshot truncated to 0 bytes
#   g1/g2  a record length field of 2^31-1 in the newest log (middle / last record)
#
# For each: starts ZooKeeper (standalone, 127.0.0.1, free port) on one copy and records
# whether it serves (or exits, with its exit code), the snapshot(s) it read, the number of
# txns it replayed, its last zxid (`srvr` "Zxid:", read before any client connects), the
# node count read through kazoo as super, and the key lines of its log (WARN/ERROR lines
# not seen on the clean copy, plus CRC/partial/EOF/snapshot lines); then runs
# `keeperkit verify --json` and `keeperkit dump --json` on a second copy, recording exit
# codes, problems, node count and whether the dump equals what ZooKeeper served.
#
# Writes testdata/zookeeper-3.8.0/damage-matrix.json (or --out) and rewrites the table
# between the damage-matrix markers of docs/ZOOKEEPER-BEHAVIOUR.md (or --docs; --docs ''
# to skip). Not part of CI (about 2-3 s per case).
#
# Options: --no-build (do not run cargo build --release -p keeperkit-tools), --keep (keep
# the temp dir), KEEPERKIT=binary (implies --no-build).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib/zkserver.sh
. "$HERE/lib/zkserver.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

FIXTURE=basic BUILD=1 KEEP=0 OUT="" DOCS="$ROOT/docs/ZOOKEEPER-BEHAVIOUR.md" ONLY=()
while [ $# -gt 0 ]; do
  case "$1" in
    --fixture) FIXTURE="$2"; shift 2;;
    --no-build) BUILD=0; shift;;
    --keep) KEEP=1; shift;;
    --out) OUT="$2"; shift 2;;
    --docs) DOCS="$2"; shift 2;;
    -h|--help) usage 0;;
    -*) echo "zk-damage-matrix: unknown option $1" >&2; usage 2;;
    *) ONLY+=("$1"); shift;;
  esac
done
SRC="$ROOT/testdata/zookeeper-3.8.0/$FIXTURE/data"
[ -d "$SRC/version-2" ] || { echo "zk-damage-matrix: no fixture $SRC" >&2; exit 2; }
OUT="${OUT:-$ROOT/testdata/zookeeper-3.8.0/damage-matrix.json}"

zk_check_deps
if [ -n "${KEEPERKIT:-}" ]; then BUILD=0; else KEEPERKIT="$ROOT/target/release/keeperkit"; fi
if [ "$BUILD" = 1 ]; then
  echo "zk-damage-matrix: cargo build --release -p keeperkit-tools"
  (cd "$ROOT" && cargo build --release -q -p keeperkit-tools)
fi
[ -x "$KEEPERKIT" ] || { echo "zk-damage-matrix: $KEEPERKIT not found" >&2; exit 2; }

WORK=$(mktemp -d /tmp/zk-damage.XXXXXX)
cleanup() {
  local rc=$?
  zk_stop
  if [ "$KEEP" = 1 ]; then echo "zk-damage-matrix: kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mapfile -t CASES < <(python3 "$HERE/lib/damage.py" list "$SRC" | python3 -c 'import json,sys
for l in sys.stdin: print(json.loads(l)["id"])')
if [ ${#ONLY[@]} -gt 0 ]; then
  # always run the clean control first: its log is the baseline for "new" WARN/ERROR lines
  CASES=(clean "${ONLY[@]/clean/}")
fi

BASELINE=-
RESULTS="$WORK/results.jsonl"; : > "$RESULTS"
for id in "${CASES[@]}"; do
  [ -n "$id" ] || continue
  c="$WORK/$id"; mkdir -p "$c/zk" "$c/kk"
  python3 "$HERE/lib/damage.py" apply "$SRC" "$id" "$c/zk/data" > "$c/case.json"
  python3 "$HERE/lib/damage.py" apply "$SRC" "$id" "$c/kk/data" > /dev/null

  # ---- ZooKeeper on its copy
  zk_init_dir "$c/zk" "$c/zk/data"
  zk_start "$c/zk" 1g
  if zk_wait_ready 60; then
    echo started > "$c/zk.status"
    zk_4lw srvr > "$c/zk.srvr"          # before our own session: the loaded zxid
    set +e
    python3 "$HERE/zk_dump_tree.py" --port "$ZK_PORT" --out "$c/zk.jsonl" 2> "$c/zk.dump.err"
    set -e
    zk_stop
  elif kill -0 "$ZK_PID" 2>/dev/null; then
    echo timeout > "$c/zk.status"
    zk_stop
  else
    set +e; wait "$ZK_PID"; zrc=$?; set -e
    ZK_PID=""
    echo "exited $zrc" > "$c/zk.status"
  fi
  if grep -q "Address already in use" "$c/zk/zookeeper.log" 2>/dev/null; then
    echo "zk-damage-matrix: $id: port race, rerun the script" >&2; exit 1
  fi
  [ "$id" = clean ] && BASELINE="$c/zk/zookeeper.log"

  # ---- keeperkit on the other copy
  set +e
  "$KEEPERKIT" verify "$c/kk/data" --json > "$c/kk.verify.json" 2> "$c/kk.verify.err"; echo $? > "$c/kk.verify.rc"
  "$KEEPERKIT" dump "$c/kk/data" --json > "$c/kk.dump.jsonl" 2> "$c/kk.dump.err"; echo $? > "$c/kk.dump.rc"
  set -e

  python3 "$HERE/lib/damage_result.py" "$c" "$BASELINE" >> "$RESULTS"
  python3 - "$RESULTS" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])][-1]
z, k = r["zookeeper"], r["keeperkit"]
print("zk-damage-matrix: %-28s ZooKeeper: %-8s zxid %-6s nodes %-5s | keeperkit: verify %s, dump %s nodes %s%s"
      % (r["id"], "serves" if z["starts"] else "exit %s" % z.get("exit_code", "?"), z.get("last_zxid", "-"),
         z.get("node_count", "-"), k.get("verify_exit"), k.get("dump_exit"), k.get("dump_node_count", "-"),
         "" if not z["starts"] or "dump_equals_zookeeper" not in k else
         (", same tree" if k["dump_equals_zookeeper"] else ", DIFFERENT tree")))
PY
done

python3 "$HERE/lib/damage_report.py" "$RESULTS" "$SRC" "$FIXTURE" "$OUT" "$DOCS"
