#!/usr/bin/env bash
# live-roundtrip.sh [--no-build] [--keep] [--via native|clickhouse] [SET...]
#
# Live check of `keeperkit convert --to zookeeper` against the real Apache ZooKeeper
# 3.8.0 (Debian package). For every fixture set in testdata/zookeeper-3.8.0/ (or the
# SETs named):
#
#   1. converts the set ZooKeeper -> native (`convert --to native`) -> ZooKeeper
#      (`convert NATIVE --to zookeeper`); with --via clickhouse, ZooKeeper ->
#      ClickHouse Keeper (`--to clickhouse --lossy --clickhouse-version 8`) ->
#      ZooKeeper instead, and the reference below is `keeperkit dump` of the Keeper
#      directory, which must equal the source except for the null values the
#      conversion reported as stored empty (scripts/lib/compare_dumps.py --null-as-empty);
#   2. runs ZooKeeper's own SnapshotFormatter on our snapshot (must print it, exit 0);
#   3. starts ZooKeeper on the converted directory (127.0.0.1, like live-interop.sh; the
#      quorum set as an ensemble of one), checks that it loaded our zxid, reads every
#      node, stat and ACL through kazoo (scripts/zk_dump_tree.py) and compares with
#      `keeperkit dump --json` of the SOURCE (scripts/lib/compare_dumps.py: first
#      differing node on failure);
#   4. a sequential create under the node with the highest sequence counter gets
#      exactly the next number (scripts/lib/zk_roundtrip_checks.py seq);
#   5. stops the server; the server log must have no digest mismatch and no ERROR;
#      SnapshotComparer finds no difference between our snapshot and the one ZooKeeper
#      wrote right after loading it, and `keeperkit dump` of ZooKeeper's snapshot equals
#      the source dump too.
#
# Then one open-session case: a fresh ZooKeeper gets a 12 s session with ephemerals
# and sequential nodes and is stopped with the session open; that directory goes
# ZooKeeper -> native -> ZooKeeper, the ephemerals must be there after the start and
# disappear once the session expires.
#
# Options:
#   --no-build   do not run `cargo build --release -p keeperkit-tools` first
#   --keep       keep the temp dir (dumps, server logs) and print its path
# Environment: KEEPERKIT=path to a keeperkit binary (implies --no-build).
#
# Called at the end of scripts/live-interop.sh (run by .ci/run). Budget: ~8 s per set
# plus ~30 s for the open-session case.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib/zkserver.sh
. "$HERE/lib/zkserver.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

BUILD=1 KEEP=0 SETS=() VIA=native
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0; shift;;
    --via) VIA="$2"; shift 2;;
    --keep) KEEP=1; shift;;
    -h|--help) usage 0;;
    -*) echo "live-roundtrip: unknown option $1" >&2; usage 2;;
    *) SETS+=("$1"); shift;;
  esac
done

FIXTURES="$ROOT/testdata/zookeeper-3.8.0"
if [ ${#SETS[@]} -eq 0 ]; then
  for d in "$FIXTURES"/*/; do [ -d "$d/data/version-2" ] && SETS+=("$(basename "$d")"); done
fi
[ ${#SETS[@]} -gt 0 ] || { echo "live-roundtrip: no fixture sets under $FIXTURES" >&2; exit 2; }
case "$VIA" in native|clickhouse) ;; *) echo "live-roundtrip: --via native or clickhouse, not $VIA" >&2; exit 2;; esac

zk_check_deps
if [ -n "${KEEPERKIT:-}" ]; then
  BUILD=0
else
  KEEPERKIT="$ROOT/target/release/keeperkit"
fi
if [ "$BUILD" = 1 ]; then
  echo "live-roundtrip: cargo build --release -p keeperkit-tools"
  (cd "$ROOT" && cargo build --release -q -p keeperkit-tools)
fi
[ -x "$KEEPERKIT" ] || { echo "live-roundtrip: $KEEPERKIT not found" >&2; exit 2; }
TOOLS_CP="$ZK_JAR:/usr/share/java/slf4j-nop.jar"

WORK=$(mktemp -d /tmp/live-roundtrip.XXXXXX)
cleanup() {
  local rc=$?
  zk_stop
  if [ "$KEEP" = 1 ]; then echo "live-roundtrip: kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# newest_snapshot DIR: the snapshot file with the highest name zxid
newest_snapshot() {
  local f best="" bz=-1 z
  for f in "$1"/snapshot.*; do
    [ -f "$f" ] || continue
    z=$(basename "$f" | cut -d. -f2)
    case "$z" in *[!0-9a-f]*|"") continue;; esac
    if [ $((16#$z)) -gt "$bz" ]; then bz=$((16#$z)); best="$f"; fi
  done
  echo "$best"
}

# to_zookeeper SRC OUT_DIR [convert options...] -> converts via native when possible;
# sets ROUTE
to_zookeeper() {
  local src="$1" out="$2" w; w="$(dirname "$out")"; mkdir -p "$w"; shift 2
  if [ "$VIA" = clickhouse ]; then
    ROUTE="ZooKeeper->ClickHouse->ZooKeeper"
    if ! "$KEEPERKIT" convert "$src" "$w/ch" --to clickhouse --lossy --clickhouse-version 8 --json \
        > "$w/convert-ch.json" 2> "$w/convert-ch.err"; then
      echo "convert --to clickhouse failed:"; cat "$w/convert-ch.err"; return 1
    fi
    if ! "$KEEPERKIT" convert "$w/ch" "$out" --to zookeeper "$@" > "$w/convert-zk.out" 2>&1; then
      echo "convert CLICKHOUSE --to zookeeper failed:"; cat "$w/convert-zk.out"; return 1
    fi
    return 0
  fi
  ROUTE="ZooKeeper->native->ZooKeeper"
  if ! "$KEEPERKIT" convert "$src" "$w/native" --to native > "$w/convert-native.out" 2>&1; then
    echo "convert --to native failed:"; cat "$w/convert-native.out"; return 1
  fi
  if ! "$KEEPERKIT" convert "$w/native" "$out" --to zookeeper "$@" > "$w/convert-zk.out" 2>&1; then
    ROUTE="ZooKeeper->ZooKeeper (native->zookeeper unavailable: $(head -1 "$w/convert-zk.out" | cut -c1-90))"
    rm -rf "$out"
    if ! "$KEEPERKIT" convert "$src" "$out" --to zookeeper "$@" > "$w/convert-zk.out" 2>&1; then
      echo "convert --to zookeeper failed:"; cat "$w/convert-zk.out"; return 1
    fi
  fi
}

# server_log_problems LOG: digest mismatches and ERROR lines (prints them). Ignored: a
# four-letter-word socket closed by our own `srvr` poll while the server answered it.
server_log_problems() {
  grep -E "[Dd]igest.*(not match|mismatch)|not matching|ERROR" "$1" \
    | grep -v "Error closing a command socket" | head -5 || true
}

START=$SECONDS
FAILED=()
fail() { echo "live-roundtrip: $1: $2" >&2; FAILED+=("$1"); zk_stop; }

for set in "${SETS[@]}"; do
  src="$FIXTURES/$set/data"
  [ -d "$src/version-2" ] || { fail "$set" "no data/version-2"; continue; }
  w="$WORK/$set"; mkdir -p "$w"
  t0=$SECONDS
  ROUTE="" comp=()
  # the compressed sets are written compressed too, so ZooKeeper reads our gz / snappy
  c=$(sed -n 's/.*"snapshot_compression": "\(gz\|snappy\)".*/\1/p' "$FIXTURES/$set/meta.json" 2>/dev/null || true)
  [ -z "$c" ] || comp=(--compression "$c")
  if ! to_zookeeper "$src" "$w/zk" "${comp[@]}" > "$w/route.err"; then fail "$set" "$(cat "$w/route.err")"; continue; fi
  ours=$(newest_snapshot "$w/zk/version-2")
  [ -n "$ours" ] || { fail "$set" "no snapshot in $w/zk/version-2"; continue; }
  ours_name=$(basename "$ours"); ours_zxid=0x$(echo "$ours_name" | cut -d. -f2)
  mkdir -p "$w/ours" && cp "$ours" "$w/ours/$ours_name"

  # ZooKeeper's SnapshotFormatter prints our snapshot.
  if ! java -cp "$TOOLS_CP" org.apache.zookeeper.server.SnapshotFormatter "$w/ours/$ours_name" \
      > "$w/formatter.out" 2>&1 || ! grep -q "^Last zxid:" "$w/formatter.out"; then
    fail "$set" "SnapshotFormatter refused our $ours_name: $(tail -3 "$w/formatter.out" | tr '\n' ' ')"; continue
  fi
  fmt_nodes=$(sed -n 's/^ZNode Details (count=\([0-9]*\)).*/\1/p' "$w/formatter.out")

  "$KEEPERKIT" dump "$src" --json > "$w/keeperkit.jsonl" 2> "$w/keeperkit.err" \
    || { fail "$set" "keeperkit dump of the source failed: $(head -3 "$w/keeperkit.err")"; continue; }
  if [ "$VIA" = clickhouse ]; then
    # The Keeper directory as Keeper would serve it: the source, null values aside.
    "$KEEPERKIT" dump "$w/ch" --json > "$w/ch.jsonl" 2> "$w/ch.err" \
      || { fail "$set" "keeperkit dump of the ClickHouse directory failed: $(head -3 "$w/ch.err")"; continue; }
    set +e
    chk=$(python3 "$HERE/lib/compare_dumps.py" clickhouse "$w/ch.jsonl" source "$w/keeperkit.jsonl" \
      --null-as-empty "$w/convert-ch.json")
    chrc=$?
    set -e
    [ "$chrc" = 0 ] || { fail "$set" "the ClickHouse directory differs from the source: $chk"; continue; }
    cp "$w/ch.jsonl" "$w/keeperkit.jsonl"
  fi

  extra=() ignore=()
  if [ -f "$w/zk/version-2/acceptedEpoch" ]; then
    echo 1 > "$w/zk/myid"
    extra=("standaloneEnabled=false" "reconfigEnabled=true" "initLimit=10" "syncLimit=5"
           "server.1=127.0.0.1:__PORT2__:__PORT3__:participant;127.0.0.1:__PORT__")
    ignore=(--ignore /zookeeper/config)
  fi
  zk_init_dir "$w/run" "$w/zk" "${extra[@]}"
  if ! zk_start_ready "$w/run" 1g 120; then
    fail "$set" "ZooKeeper did not start on the converted dir: $(grep -E "ERROR|Exception" "$w/run/zookeeper.log" | tail -3)"; continue
  fi
  loaded=$(sed -n 's/.*Snapshot loaded in .* highest zxid is \(0x[0-9a-f]*\),.*/\1/p' "$w/run/zookeeper.log" | head -1)
  if [ -z "$loaded" ] || [ $((loaded)) -ne $((ours_zxid)) ]; then
    fail "$set" "ZooKeeper loaded zxid '${loaded:-none}', our snapshot is $ours_zxid"; continue
  fi
  set +e
  summary=$(python3 "$HERE/zk_dump_tree.py" --port "$ZK_PORT" --out "$w/zookeeper.jsonl" 2>&1 >/dev/null)
  zrc=$?
  set -e
  [ "$zrc" = 0 ] || { fail "$set" "reading the tree from ZooKeeper failed (rc $zrc): $summary"; continue; }
  set +e
  cmp_out=$(python3 "$HERE/lib/compare_dumps.py" zookeeper "$w/zookeeper.jsonl" source "$w/keeperkit.jsonl" "${ignore[@]}")
  crc=$?
  seq_out=$(python3 "$HERE/lib/zk_roundtrip_checks.py" seq --port "$ZK_PORT" --dump "$w/keeperkit.jsonl" 2>&1)
  src_rc=$?
  set -e
  zk_stop
  if [ "$crc" != 0 ]; then
    echo "live-roundtrip: $set: MISMATCH between ZooKeeper on our converted dir and the source:" >&2
    printf '%s\n' "$cmp_out" | sed 's/^/    /' >&2
    FAILED+=("$set"); continue
  fi
  [ "$src_rc" = 0 ] || { fail "$set" "sequential create after restart: $seq_out"; continue; }
  problems=$(server_log_problems "$w/run/zookeeper.log")
  [ -z "$problems" ] || { fail "$set" "server log: $problems"; continue; }

  # The snapshot ZooKeeper wrote right after loading ours.
  theirs=$(sed -n 's/.*Snapshotting: 0x[0-9a-f]* to \(.*snapshot\.[0-9a-f.a-z]*\).*/\1/p' "$w/run/zookeeper.log" | head -1)
  [ -n "$theirs" ] && [ -f "$theirs" ] || { fail "$set" "ZooKeeper wrote no snapshot after loading ours"; continue; }
  mkdir -p "$w/theirs/version-2" && cp "$theirs" "$w/theirs/version-2/"
  theirs="$w/theirs/version-2/$(basename "$theirs")"
  if ! java -cp "$TOOLS_CP" org.apache.zookeeper.server.SnapshotComparer -l "$w/ours/$ours_name" \
      -r "$theirs" -b 0 -n 0 > "$w/comparer.out" 2>&1 || ! grep -q "All layers compared" "$w/comparer.out"; then
    fail "$set" "SnapshotComparer failed: $(tail -3 "$w/comparer.out" | tr '\n' ' ')"; continue
  fi
  diffs=$(grep -E "^Node .*(Delta|only)" "$w/comparer.out" | grep -v "Delta: 0 bytes, 0 descendants" | head -3 || true)
  counts=$(grep -E "^(Node count|Total size)" "$w/comparer.out" | sort | uniq -c | awk '$1 != 2' || true)
  [ -z "$diffs$counts" ] || { fail "$set" "SnapshotComparer found differences: $diffs $counts"; continue; }
  "$KEEPERKIT" dump "$w/theirs" --json > "$w/theirs.jsonl" 2> "$w/theirs.err" \
    || { fail "$set" "keeperkit dump of ZooKeeper's snapshot failed: $(head -3 "$w/theirs.err")"; continue; }
  set +e
  cmp2=$(python3 "$HERE/lib/compare_dumps.py" zookeeper-snapshot "$w/theirs.jsonl" source "$w/keeperkit.jsonl" "${ignore[@]}")
  c2=$?
  set -e
  if [ "$c2" != 0 ]; then
    echo "live-roundtrip: $set: ZooKeeper's own snapshot after loading ours differs from the source:" >&2
    printf '%s\n' "$cmp2" | sed 's/^/    /' >&2
    FAILED+=("$set"); continue
  fi
  echo "live-roundtrip: $set: OK via $ROUTE${comp[*]:+ (${comp[*]})}; $(wc -l < "$w/zookeeper.jsonl") nodes served at zxid $loaded, $cmp_out; SnapshotFormatter $fmt_nodes nodes; SnapshotComparer no difference; seq $(python3 -c 'import json,sys;d=json.loads(sys.argv[1]);print(d["created"])' "$seq_out") [$((SECONDS - t0)) s]"
done

# ---- A session left open: its ephemerals survive the round trip, then expire. -------
open_case() {
  local w="$WORK/open-session" out rc
  mkdir -p "$w/orig"
  zk_init_dir "$w/orig-run" "$w/orig"
  zk_start_ready "$w/orig-run" 512m 60 || { echo "fresh ZooKeeper did not start"; return 1; }
  out=$(python3 "$HERE/lib/zk_roundtrip_checks.py" open-session --port "$ZK_PORT" --root /rt) \
    || { echo "open-session failed: $out"; return 1; }
  zk_stop   # SIGTERM well within the 12 s timeout: the session stays open in the files
  local paths; paths=$(python3 -c 'import json,sys;print(",".join(json.loads(sys.argv[1])["ephemerals"]))' "$out")
  "$KEEPERKIT" dump "$w/orig" --json > "$w/source.jsonl"
  grep -q '"/rt/e1"' "$w/source.jsonl" || { echo "the source state lost the ephemerals already (session not open?)"; return 1; }
  to_zookeeper "$w/orig" "$w/conv/zk" || return 1
  zk_init_dir "$w/run" "$w/conv/zk"
  zk_start_ready "$w/run" 512m 60 || { echo "ZooKeeper did not start on the converted dir"; return 1; }
  set +e
  eph=$(python3 "$HERE/lib/zk_roundtrip_checks.py" ephemerals --port "$ZK_PORT" --paths "$paths" --gone-within 30)
  rc=$?
  seq=$(python3 "$HERE/lib/zk_roundtrip_checks.py" seq --port "$ZK_PORT" --dump "$w/source.jsonl")
  src=$?
  set -e
  zk_stop
  [ "$rc" = 0 ] || { echo "ephemerals: $eph"; return 1; }
  [ "$src" = 0 ] || { echo "sequential create: $seq"; return 1; }
  local problems; problems=$(server_log_problems "$w/run/zookeeper.log")
  [ -z "$problems" ] || { echo "server log: $problems"; return 1; }
  echo "session $(python3 -c 'import json,sys;d=json.loads(sys.argv[1]);print(d["session"], d["timeout_ms"], "ms")' "$out") via $ROUTE: $eph; $seq"
}
t0=$SECONDS
if msg=$(open_case 2>&1); then
  echo "live-roundtrip: open-session: OK: $msg [$((SECONDS - t0)) s]"
else
  zk_stop
  echo "live-roundtrip: open-session: FAILED: $msg" >&2
  FAILED+=("open-session")
fi

echo "live-roundtrip (via $VIA): ${#SETS[@]} sets + open-session in $((SECONDS - START)) s; ${#FAILED[@]} failed${FAILED[*]:+: ${FAILED[*]}}"
[ ${#FAILED[@]} -eq 0 ]
