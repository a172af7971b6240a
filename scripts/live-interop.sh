#!/usr/bin/env bash
# live-interop.sh [--no-build] [--keep] [SET...]
#
# Live interop check against the real Apache ZooKeeper 3.8.0 (Debian package). For every
# fixture set in testdata/zookeeper-3.8.0/ (or the SETs named):
#
#   1. copies data/ to a temp dir and starts ZooKeeper on the COPY (127.0.0.1, free
#      port, extendedTypesEnabled=true, superDigest for super:superpw; the quorum set as
#      a one-server ensemble with fresh ports, like zkgen --quorum1);
#   2. reads the whole tree through kazoo as super (scripts/zk_dump_tree.py), checking
#      that the server's zxid is exactly the loaded zxid + 1 (our own createSession)
#      before and after the read, i.e. that the server changed nothing after loading;
#   3. runs `keeperkit dump --json` on the ORIGINAL files (which must be left unchanged)
#      and compares the two dumps node by node (scripts/lib/compare_dumps.py);
#   4. stops the server.
#
# Exits non-zero when any set differs, printing the first differing node of each. The
# quorum set ignores /zookeeper/config: a restarted leader rewrites it (new ports, no
# txn), so it can never match the files.
#
# Options:
#   --no-build   do not run `cargo build --release -p keeperkit-tools` first
#   --keep       keep the temp dir (dumps, server logs) and print its path
# Environment: KEEPERKIT=path to a keeperkit binary (implies --no-build).
#
# Run by .ci/run. Budget: ~5 s per set (the release build not included).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib/zkserver.sh
. "$HERE/lib/zkserver.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

BUILD=1 KEEP=0 SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) BUILD=0; shift;;
    --keep) KEEP=1; shift;;
    -h|--help) usage 0;;
    -*) echo "live-interop: unknown option $1" >&2; usage 2;;
    *) SETS+=("$1"); shift;;
  esac
done

FIXTURES="$ROOT/testdata/zookeeper-3.8.0"
if [ ${#SETS[@]} -eq 0 ]; then
  for d in "$FIXTURES"/*/; do [ -d "$d/data/version-2" ] && SETS+=("$(basename "$d")"); done
fi
[ ${#SETS[@]} -gt 0 ] || { echo "live-interop: no fixture sets under $FIXTURES" >&2; exit 2; }

zk_check_deps
if [ -n "${KEEPERKIT:-}" ]; then
  BUILD=0
else
  KEEPERKIT="$ROOT/target/release/keeperkit"
fi
if [ "$BUILD" = 1 ]; then
  echo "live-interop: cargo build --release -p keeperkit-tools"
  (cd "$ROOT" && cargo build --release -q -p keeperkit-tools)
fi
[ -x "$KEEPERKIT" ] || { echo "live-interop: $KEEPERKIT not found (cargo build --release -p keeperkit-tools)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/live-interop.XXXXXX)
cleanup() {
  local rc=$?
  zk_stop
  if [ "$KEEP" = 1 ]; then echo "live-interop: kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

hash_tree() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

START=$SECONDS
FAILED=() RESULTS=()
for set in "${SETS[@]}"; do
  src="$FIXTURES/$set"
  [ -d "$src/data/version-2" ] || { echo "live-interop: $set: no data/version-2" >&2; FAILED+=("$set"); continue; }
  w="$WORK/$set"; mkdir -p "$w"
  t0=$SECONDS
  cp -a --sparse=always "$src/data" "$w/data"
  before=$(hash_tree "$src/data")

  extra=() ignore=()
  if [ -f "$src/data/version-2/acceptedEpoch" ] || [ -f "$src/data/myid" ]; then
    # ensemble of one (zkgen --quorum1): the files carry epoch-based zxids and epoch files
    [ -f "$w/data/myid" ] || echo 1 > "$w/data/myid"
    extra=("standaloneEnabled=false" "reconfigEnabled=true" "initLimit=10" "syncLimit=5"
           "server.$(cat "$w/data/myid")=127.0.0.1:__PORT2__:__PORT3__:participant;127.0.0.1:__PORT__")
    ignore=(--ignore /zookeeper/config)
  fi
  if grep -qs '"snapshot_compression": "\(gz\|snappy\)"' "$src/meta.json"; then
    extra+=("snapshot.compression.method=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["snapshot_compression"])' "$src/meta.json")")
  fi
  zk_init_dir "$w" "$w/data" "${extra[@]}"
  if ! zk_start_ready "$w" 1g 120; then
    echo "live-interop: $set: ZooKeeper did not start on the copy; its log ends with:" >&2
    grep -E "ERROR|Exception|WARN" "$w/zookeeper.log" | tail -8 >&2 || tail -8 "$w/zookeeper.log" >&2
    FAILED+=("$set"); continue
  fi
  loaded=$(sed -n 's/.*Snapshot loaded in .* highest zxid is \(0x[0-9a-f]*\),.*/\1/p' "$w/zookeeper.log" | head -1)
  [ -n "$loaded" ] || { echo "live-interop: $set: no 'Snapshot loaded' line in the server log" >&2; FAILED+=("$set"); zk_stop; continue; }
  if [ ${#ignore[@]} -gt 0 ]; then
    # ensemble: the new leader starts epoch max(acceptedEpoch, loaded epoch) + 1, so our
    # createSession is the first txn of that epoch: zxid (epoch << 32) | 1
    ep=$(cat "$src/data/version-2/acceptedEpoch" 2>/dev/null || echo 0)
    [ $((loaded >> 32)) -gt "$ep" ] && ep=$((loaded >> 32))
    expect=$(printf '0x%x' $(((ep + 1) << 32 | 1)))
  else
    expect=$(printf '0x%x' $((loaded + 1)))   # our dump session's createSession
  fi
  set +e
  summary=$(python3 "$HERE/zk_dump_tree.py" --port "$ZK_PORT" --out "$w/zookeeper.jsonl" --expect-zxid "$expect" 2>&1 >/dev/null)
  zrc=$?
  set -e
  zk_stop
  if [ "$zrc" != 0 ]; then
    echo "live-interop: $set: reading the tree from ZooKeeper failed (rc $zrc): $summary" >&2
    FAILED+=("$set"); continue
  fi

  set +e
  "$KEEPERKIT" dump "$src/data" --json > "$w/keeperkit.jsonl" 2> "$w/keeperkit.err"
  krc=$?
  set -e
  after=$(hash_tree "$src/data")
  if [ "$before" != "$after" ]; then
    echo "live-interop: $set: keeperkit dump MODIFIED the original files!" >&2
    FAILED+=("$set"); continue
  fi
  if [ "$krc" != 0 ]; then
    echo "live-interop: $set: keeperkit dump exited $krc:" >&2
    head -20 "$w/keeperkit.err" >&2
    FAILED+=("$set"); continue
  fi

  set +e
  cmp_out=$(python3 "$HERE/lib/compare_dumps.py" zookeeper "$w/zookeeper.jsonl" keeperkit "$w/keeperkit.jsonl" "${ignore[@]}")
  crc=$?
  set -e
  n=$(wc -l < "$w/zookeeper.jsonl")
  if [ "$crc" = 0 ]; then
    echo "live-interop: $set: OK, $n nodes, loaded zxid $loaded, $cmp_out [$((SECONDS - t0)) s]"
    RESULTS+=("$set ok")
  else
    echo "live-interop: $set: MISMATCH between ZooKeeper (loaded zxid $loaded) and keeperkit dump:" >&2
    printf '%s\n' "$cmp_out" | sed 's/^/    /' >&2
    [ -s "$w/keeperkit.err" ] && sed 's/^/    keeperkit stderr: /' "$w/keeperkit.err" | head -5 >&2
    FAILED+=("$set")
  fi
done

echo "live-interop: ${#SETS[@]} sets in $((SECONDS - START)) s; ${#FAILED[@]} failed${FAILED[*]:+: ${FAILED[*]}}"

# The reverse direction: keeperkit convert --to zookeeper, served by a real ZooKeeper.
# Through native, then through ClickHouse Keeper.
for via in native clickhouse; do
  if ! KEEPERKIT="$KEEPERKIT" "$HERE/live-roundtrip.sh" --no-build --via "$via" "${SETS[@]}"; then
    FAILED+=("live-roundtrip-$via")
  fi
done
[ ${#FAILED[@]} -eq 0 ]
