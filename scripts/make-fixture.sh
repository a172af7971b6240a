#!/usr/bin/env bash
# make-fixture.sh [--force] [--max-mb M] NAME [zkgen options...]
#
# Generates one ZooKeeper 3.8.0 fixture set into testdata/zookeeper-3.8.0/NAME with the
# zkgen tool of the shared material (../shared/zkgen/zkgen, or $ZKGEN):
#
#   zkgen --out <tmp> --prealloc-kb 64 [zkgen options...]
#
# and copies into the set only what the tests read:
#   data/           the server's files (version-2/, plus myid for --quorum1), untouched
#                   except that sparse holes are kept sparse
#   expected.json   the tree the clients saw (crash: up to the last acknowledged zxid)
#   recovered.json  the tree a restarted ZooKeeper served from a copy of the files
#   meta.json       zkgen's parameters, timings and file list
# (zkgen's conf/, logs/ and journal.json are dropped: they hold absolute temp paths,
# ports and server logs, not test input.)
#
# The set must stay small: the script fails when data/ + JSON exceed --max-mb (default 3).
# A restart check (--verify-restart) is always requested, so recovered.json exists.
# Add a row for the new set to testdata/README.md by hand.
#
# Examples:
#   scripts/make-fixture.sh seed7-small-snapcount --nodes 3000 --seed 7 --snap-count 400
#   scripts/make-fixture.sh crash-400 --nodes 400 --seed 8 --crash
#
# Needs Debian's zookeeper 3.8.0 package, Java and python kazoo (see .ci/run).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

FORCE=0 MAXMB=3
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1; shift;;
    --max-mb) MAXMB="$2"; shift 2;;
    -h|--help) usage 0;;
    -*) echo "make-fixture: unknown option $1 (zkgen options go after NAME)" >&2; usage 2;;
    *) break;;
  esac
done
[ $# -ge 1 ] || { echo "make-fixture: NAME is required" >&2; usage 2; }
NAME="$1"; shift
[[ "$NAME" =~ ^[a-z0-9][a-z0-9._-]*$ ]] || { echo "make-fixture: NAME must be [a-z0-9._-]+" >&2; exit 2; }
for a in "$@"; do
  case "$a" in
    --out|--prealloc-kb|--force) echo "make-fixture: $a is set by this script" >&2; exit 2;;
  esac
done

ZKGEN="${ZKGEN:-$ROOT/../shared/zkgen/zkgen}"
[ -x "$ZKGEN" ] || { echo "make-fixture: zkgen not found at $ZKGEN (set ZKGEN=...)" >&2; exit 2; }
DEST="$ROOT/testdata/zookeeper-3.8.0/$NAME"
if [ -e "$DEST" ]; then
  [ "$FORCE" = 1 ] || { echo "make-fixture: $DEST exists (use --force to replace it)" >&2; exit 1; }
fi

TMP=$(mktemp -d /tmp/make-fixture.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

echo "make-fixture: zkgen --prealloc-kb 64 $* -> $NAME"
"$ZKGEN" --out "$TMP/set" --prealloc-kb 64 --verify-restart "$@"

for f in expected.json recovered.json meta.json; do
  [ -f "$TMP/set/$f" ] || { echo "make-fixture: zkgen did not produce $f" >&2; exit 1; }
done
# zkgen's restart check must have matched (a crash run is compared for information only)
python3 - "$TMP/set/meta.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
rc = m.get("restart_check") or {}
if not m.get("crash") and rc.get("identical") is False:
    sys.exit("make-fixture: zkgen's restart check differs from expected.json: %s" % rc.get("diffs"))
PY

mkdir -p "$TMP/out"
cp -a --sparse=always "$TMP/set/data" "$TMP/out/data"
cp "$TMP/set/expected.json" "$TMP/set/recovered.json" "$TMP/set/meta.json" "$TMP/out/"
# logs are sparse (16 B + k * 64 KiB apparent); git stores the apparent size, so count that
BYTES=$(find "$TMP/out" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
if [ "$BYTES" -gt $((MAXMB * 1024 * 1024)) ]; then
  echo "make-fixture: set is $BYTES bytes, more than --max-mb $MAXMB; not installed" >&2
  exit 1
fi
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
cp -a --sparse=always "$TMP/out" "$DEST"
echo "make-fixture: wrote $DEST ($BYTES bytes):"
find "$DEST/data/version-2" -type f -printf '  %-24f %10s bytes\n' | sort
python3 - "$DEST" <<'PY'
import json, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "meta.json")))
e = json.load(open(os.path.join(d, "expected.json")))
names = os.listdir(os.path.join(d, "data", "version-2"))
print("make-fixture: %d nodes, last_zxid %s, %d logs, %d snapshots, restart check identical=%s"
      % (e["node_count"], e["last_zxid_hex"], sum(n.startswith("log.") for n in names),
         sum(n.startswith("snapshot.") for n in names), (m.get("restart_check") or {}).get("identical")))
PY
