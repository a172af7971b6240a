#!/usr/bin/env bash
# bench-server.sh [--dir DIR] [--duration S] [--targets "zookeeper keeperkit"] [--quick]
#
# `keeperkit bench server` against Apache ZooKeeper 3.8 standalone and `keeperkit serve`,
# in the same run, on the same machine and disk, both durable (ZooKeeper: forceSync=yes;
# both: scripts/lib/target.sh settings), each case on a fresh server and data directory:
#
#   write-1, write-8, write-64   create+setData (50/50), 1 KiB values, 1 / 8 / 64 clients
#   read-32                      getData of random nodes among 100,000 of 1 KiB, 32 clients
#
# Prints, per case, ops/s and p50/p99/p99.9 latency of each server (and the CPU the load
# generator used meanwhile, in % of one core: near 100 x cores it, not the server, is
# the limit, and the ratio says little) and the ratios
# keeperkit / ZooKeeper (throughput: higher is better; latency: lower is better), and
# names the machine. The JSON of every run is kept in DIR/results/.
#
# Options:
#   --dir DIR      where the data directories go (default: a temp dir under /tmp; the disk
#                  measured is that one)
#   --duration S   seconds of load per case (default 10)
#   --targets T    servers to run (default "zookeeper keeperkit")
#   --quick        2 s per case and a 10,000-node read pool (a smoke run)
#   --cases LIST   comma-separated subset of write-1,write-8,write-64,read-32
# Environment: KEEPERKIT = the keeperkit binary (default target/release/keeperkit, built
# when missing); KEEPERKIT_PORT_RANGE=LO-HI limits the ports used.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib/target.sh
. "$HERE/lib/target.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

DIR="" DURATION=10 TARGETS="zookeeper keeperkit" READ_NODES=100000 ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --targets) TARGETS="$2"; shift 2;;
    --quick) DURATION=2; READ_NODES=10000; shift;;
    --cases) ONLY="$2"; shift 2;;
    -h|--help) usage 0;;
    *) echo "bench-server: unknown argument $1" >&2; usage 2;;
  esac
done
zk_check_deps || exit 2
if [ ! -x "$KEEPERKIT" ]; then
  (cd "$ROOT" && cargo build --release -q -p keeperkit-tools) || exit 2
fi
if [ -z "$DIR" ]; then DIR=$(mktemp -d /tmp/bench-server.XXXXXX); fi
mkdir -p "$DIR/results"
DIR="$(cd "$DIR" && pwd)"
cleanup() { local rc=$?; tgt_stop; exit "$rc"; }
TGT_ZK_HEAP=2g   # room for the 100k x 1 KiB read pool
trap cleanup EXIT
trap 'exit 130' INT TERM

# name: clients mix nodes
CASES=(
  "write-1:1:create=50,set=50:1000"
  "write-8:8:create=50,set=50:1000"
  "write-64:64:create=50,set=50:1000"
  "read-32:32:get=100:$READ_NODES"
)

echo "bench-server: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
echo "bench-server: load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
echo "bench-server: data on $(df -hT "$DIR" | awk 'NR == 2 {print $1 " (" $2 ", " $3 ")"}') at $DIR; $DURATION s per case"
for c in "${CASES[@]}"; do
  IFS=: read -r name clients mix nodes <<< "$c"
  if [ -n "$ONLY" ] && [[ ",$ONLY," != *",$name,"* ]]; then continue; fi
  for kind in $TARGETS; do
    rm -rf "$DIR/$kind-$name"
    tgt_init "$kind" "$DIR/$kind-$name"
    tgt_start || { echo "bench-server: $kind did not start" >&2; exit 1; }
    set +e
    "$KEEPERKIT" bench server --connect "127.0.0.1:$TGT_PORT" --clients "$clients" --duration "$DURATION" \
      --mix "$mix" --value-size 1024 --nodes "$nodes" --json > "$DIR/results/$kind-$name.json" 2> "$DIR/results/$kind-$name.err"
    rc=$?
    set -e
    tgt_stop
    if [ "$rc" != 0 ]; then
      echo "bench-server: $kind $name failed: $(head -3 "$DIR/results/$kind-$name.err")" >&2
      rm -f "$DIR/results/$kind-$name.json"
    else
      python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); a=r["all"]
c=r.get("client_cpu_percent"); c="n/a" if c is None else "%.0f%%" % c
print("bench-server: %-9s %-8s %9.0f ops/s  p50 %7.3f  p99 %7.3f  p99.9 %7.3f ms  (%d errors; load generator CPU %s of one core)" % (sys.argv[2], sys.argv[3], r["ops_per_s"], a["p50_ms"], a["p99_ms"], a["p999_ms"], r["errors"], c))' \
        "$DIR/results/$kind-$name.json" "$kind" "$name"
    fi
    rm -rf "$DIR/$kind-$name/data"
  done
done

echo "bench-server: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$DIR/results" <<'PY'
import json, os, sys
d = sys.argv[1]
def load(kind, name):
    p = os.path.join(d, "%s-%s.json" % (kind, name))
    return json.load(open(p)) if os.path.exists(p) else None
def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "n/a"
print()
print("| case | ZooKeeper ops/s | keeperkit ops/s | ratio | ZooKeeper p99 / p99.9 ms | keeperkit p99 / p99.9 ms | p99 ratio | p99.9 ratio |")
print("|---|---|---|---|---|---|---|---|")
for name in ("write-1", "write-8", "write-64", "read-32"):
    z, k = load("zookeeper", name), load("keeperkit", name)
    f = lambda r: "%.0f" % r["ops_per_s"] if r else "n/a"
    l = lambda r: "%.2f / %.2f" % (r["all"]["p99_ms"], r["all"]["p999_ms"]) if r else "n/a"
    print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        name, f(z), f(k), ratio(k and k["ops_per_s"], z and z["ops_per_s"]), l(z), l(k),
        ratio(k and k["all"]["p99_ms"], z and z["all"]["p99_ms"]),
        ratio(k and k["all"]["p999_ms"], z and z["all"]["p999_ms"])))
PY
