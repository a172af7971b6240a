#!/usr/bin/env bash
# bench-server-1m.sh ZK_DATA [--dir DIR] [--duration S] [--clients N] [--zk-heap SIZE] [--starts N]
#
# `keeperkit serve` and Apache ZooKeeper 3.8 standalone on the same 1M-znode tree (ZK_DATA:
# a ZooKeeper dataDir holding version-2/, e.g. the one `scripts/make-1m.sh DIR` makes in
# DIR/data; it is only read: everything runs on copies under DIR). Measures, in one run on
# this machine (named in the output):
#
#   start   time from starting the server until a client first gets an answer (connect,
#           session, `exists /` answered with no error: scripts/lib/first_request.py
#           polling every 10 ms): keeperkit on its own (imported) data directory, the
#           median of --starts runs, against ZooKeeper on its dataDir (one run: the JVM
#           start, the load, and the snapshot ZooKeeper writes before it serves); also
#           the first start with `--import ZK_DATA` (the conversion included). Target:
#           keeperkit at least 5x faster.
#   memory  RSS of each server holding the tree, 1 s after it first answered (and
#           ZooKeeper's again after a full GC, `jcmd GC.run`: the lower one is compared).
#           ZooKeeper runs with -Xmx SIZE (--zk-heap, default 2g, no -Xms). Target:
#           keeperkit at most 0.4x.
#   snapshot  keeperkit only: N clients (--clients, default 8) setData 1 KiB values on
#           10,000 pool nodes for S s (--duration, default 8) twice: without a snapshot,
#           then while snapshots of the whole tree are written back to back (`csnp`
#           every 100 ms; a new one starts as soon as the previous one is done). p99 of
#           the writes with / without (target at most 2x), and the peak RSS during the
#           snapshots (VmHWM, reset just before; also sampled every 50 ms) against the RSS
#           before them (target at most 1.1x). setData only, so that the tree does not
#           grow during the measurement.
#
# Both servers durable and configured as scripts/lib/target.sh says (forceSync=yes). The
# whole run takes about 2-4 minutes on a quiet 2-core machine (most of it copying
# ZK_DATA and ZooKeeper's start), longer on a loaded one. DIR (default a temp dir
# under /tmp, removed at the end unless given) needs about 3x ZK_DATA's size; the data
# directories are removed at the end, the JSON and logs are kept in DIR/results/.
# Environment: KEEPERKIT = the keeperkit binary (default target/release/keeperkit, built
# when missing); KEEPERKIT_PORT_RANGE=LO-HI limits the ports used.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib/target.sh
. "$HERE/lib/target.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

ZKSRC="" DIR="" DURATION=8 CLIENTS=8 HEAP=2g STARTS=3 KEEP_DIR=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --clients) CLIENTS="$2"; shift 2;;
    --zk-heap) HEAP="$2"; shift 2;;
    --starts) STARTS="$2"; shift 2;;
    -h|--help) usage 0;;
    -*) echo "bench-server-1m: unknown argument $1" >&2; usage 2;;
    *) [ -z "$ZKSRC" ] || { echo "bench-server-1m: one ZK_DATA only" >&2; usage 2; }; ZKSRC="$1"; shift;;
  esac
done
[ -n "$ZKSRC" ] || usage 2
[ -d "$ZKSRC/version-2" ] || { echo "bench-server-1m: $ZKSRC/version-2 not found (a ZooKeeper dataDir; make one with scripts/make-1m.sh)" >&2; exit 2; }
ZKSRC="$(cd "$ZKSRC" && pwd)"
zk_check_deps || exit 2
command -v jcmd >/dev/null || { echo "bench-server-1m: jcmd not found (a JDK)" >&2; exit 2; }
if [ ! -x "$KEEPERKIT" ]; then
  (cd "$ROOT" && cargo build --release -q -p keeperkit-tools) || exit 2
fi
if [ -z "$DIR" ]; then DIR=$(mktemp -d /tmp/bench-server-1m.XXXXXX); KEEP_DIR=0; fi
mkdir -p "$DIR/results"
DIR="$(cd "$DIR" && pwd)"
R="$DIR/results"
SAMPLER_PID=""
cleanup() {
  local rc=$?
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
  tgt_stop
  rm -rf "$DIR/kk" "$DIR/zk"
  [ "$KEEP_DIR" = 1 ] || rm -rf "$DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "bench-server-1m: $*"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
# first_answer T0: seconds from T0 to the first answer of the server on TGT_PORT
first_answer() { python3 "$HERE/lib/first_request.py" "$TGT_PORT" "$1" 900; }
json_set() { python3 -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p)) if __import__("os").path.exists(p) else {}; d[sys.argv[2]]=json.loads(sys.argv[3]); json.dump(d,open(p,"w"),indent=1)' "$R/figures.json" "$1" "$2"; }

say "$(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
say "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
say "data on $(df -hT "$DIR" | awk 'NR == 2 {print $1 " (" $2 ")"}') at $DIR; source $ZKSRC ($(du -sh "$ZKSRC" | cut -f1))"
rm -f "$R/figures.json"

# --- copies --------------------------------------------------------------------------
rm -rf "$DIR/kk" "$DIR/zk"
tgt_init zookeeper "$DIR/zk"
t=$(now)
cp -r "$ZKSRC/version-2" "$DIR/zk/data/"
say "copied ZK_DATA in $(python3 -c "import time; print('%.1f' % (time.time() - $t))") s"

# --- keeperkit: first start with --import, then starts on its own directory -----------
# snapshots only when asked (csnp), not by snapCount in the middle of a measurement
tgt_init keeperkit "$DIR/kk" snapCount=1000000000
TGT_SERVE_ARGS=(--import "$DIR/zk/data")
t0=$(now); tgt_launch
import_s=$(first_answer "$t0") || { say "keeperkit --import did not serve: $import_s"; tail -5 "$DIR/kk/keeperkit.log" >&2; exit 1; }
nodes=$(tgt_4lw mntr | awk '/zk_znode_count/ {print $2}')
say "keeperkit first start with --import (conversion included): $import_s s, $nodes znodes"
json_set keeperkit_import_start_s "$import_s"
json_set znodes "${nodes:-0}"
tgt_stop
cp "$DIR/kk/keeperkit.log" "$R/keeperkit-import.log"
TGT_SERVE_ARGS=()
starts=()
for i in $(seq 1 "$STARTS"); do
  t0=$(now); tgt_launch
  s=$(first_answer "$t0") || { say "keeperkit did not serve: $s"; tail -5 "$DIR/kk/keeperkit.log" >&2; exit 1; }
  starts+=("$s")
  say "keeperkit start $i on its own directory: $s s"
  [ "$i" = "$STARTS" ] || tgt_stop
done
kk_start=$(printf '%s\n' "${starts[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}')
json_set keeperkit_start_s "[$(IFS=,; echo "${starts[*]}")]"
sleep 1
kk_rss=$(rss_kb "$TGT_PID")
say "keeperkit RSS holding the tree: $((kk_rss / 1024)) MiB (peak during its start: $(( $(hwm_kb "$TGT_PID") / 1024 )) MiB)"
json_set keeperkit_rss_kb "$kk_rss"

# --- keeperkit: writes with and without a snapshot being written ----------------------
bench() { # SECONDS NAME: runs the setData load, JSON to $R/NAME.json
  "$KEEPERKIT" bench server --connect "127.0.0.1:$TGT_PORT" --clients "$CLIENTS" --duration "$1" \
    --mix set=100 --value-size 1024 --nodes 10000 --json > "$R/$2.json" 2> "$R/$2.err" \
    || { say "bench $2 failed: $(head -3 "$R/$2.err")"; exit 1; }
}
p99() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["all"]["p99_ms"])' "$R/$1.json"; }
ops() { python3 -c 'import json,sys; print("%.0f" % json.load(open(sys.argv[1]))["ops_per_s"])' "$R/$1.json"; }
bench 1 warmup    # creates the 10,000 pool nodes
bench "$DURATION" writes-alone
before_kb=$(rss_kb "$TGT_PID")
# VmHWM back to the current RSS; where that is refused, the sampled peak is compared
hwm_reset=0
if echo 5 2>/dev/null > "/proc/$TGT_PID/clear_refs"; then hwm_reset=1; fi
python3 - "$TGT_PORT" "$TGT_PID" "$R/sampler.json" <<'PY' &
import json, socket, sys, time
port, pid, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
peak, asks, t_start = 0, 0, time.time()
next_ask = 0.0
stop = False
def rss():
    with open("/proc/%s/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1])
    return 0
def done(*_):
    global stop
    stop = True
import signal
signal.signal(signal.SIGTERM, done)
while not stop:
    now = time.time()
    if now >= next_ask:
        next_ask = now + 0.1
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"csnp")
                while s.recv(4096):
                    pass
            asks += 1
        except OSError:
            pass
    try:
        peak = max(peak, rss())
    except OSError:
        break
    time.sleep(0.05)
json.dump({"peak_rss_kb_sampled": peak, "csnp_sent": asks, "from": t_start, "to": time.time()}, open(out, "w"))
PY
SAMPLER_PID=$!
sleep 0.5   # the first snapshot is under way
bench "$DURATION" writes-snapshot
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
peak_kb=$(hwm_kb "$TGT_PID")
tgt_stop
cp "$DIR/kk/keeperkit.log" "$R/keeperkit.log"
snap=$(python3 - "$R/keeperkit.log" "$R/sampler.json" <<'PY'
import datetime, json, re, sys
w = json.load(open(sys.argv[2]))
started = written = 0
durs = []
t_start = None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"(?:\x1b\[[0-9;]*m)?(\d{4}-\d\d-\d\dT[\d:.]+)Z", line)
    if not m:
        continue
    t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()
    if not (w["from"] <= t <= w["to"] + 5):
        continue
    if re.search(r"snapshot at index \d+ started", line):
        started += 1
        t_start = t
    elif "snapshot written" in line and t_start is not None:
        written += 1
        durs.append(t - t_start)
        t_start = None
print("%d %d %.2f %d" % (started, written, sum(durs) / len(durs) if durs else 0, w["peak_rss_kb_sampled"]))
PY
)
read -r snaps_started snaps_written snap_mean_s sampled_kb <<< "$snap"
if [ "$hwm_reset" = 0 ] || [ "$sampled_kb" -gt "$peak_kb" ]; then peak_kb=$sampled_kb; fi
say "writes alone: $(ops writes-alone) ops/s, p99 $(p99 writes-alone) ms; while snapshots are written: $(ops writes-snapshot) ops/s, p99 $(p99 writes-snapshot) ms ($snaps_started snapshots started, $snaps_written written, ~$snap_mean_s s each)"
say "RSS before the snapshots $((before_kb / 1024)) MiB, peak during them $((peak_kb / 1024)) MiB (sampled: $((sampled_kb / 1024)) MiB)"
json_set snapshot "{\"p99_alone_ms\": $(p99 writes-alone), \"p99_snapshot_ms\": $(p99 writes-snapshot), \"rss_before_kb\": $before_kb, \"rss_peak_kb\": $peak_kb, \"snapshots_started\": $snaps_started, \"snapshots_written\": $snaps_written, \"snapshot_mean_s\": $snap_mean_s}"
[ "$snaps_started" -gt 0 ] || say "warning: no snapshot started during the window: the snapshot figures say nothing"

# --- ZooKeeper ------------------------------------------------------------------------
TGT_ZK_HEAP=$HEAP
tgt_init zookeeper "$DIR/zk"
t0=$(now); tgt_launch
zk_start=$(first_answer "$t0") || { say "ZooKeeper did not serve: $zk_start"; tail -5 "$DIR/zk/zookeeper.log" >&2; exit 1; }
say "ZooKeeper start (-Xmx$HEAP): $zk_start s"
sleep 1
zk_rss=$(rss_kb "$TGT_PID")
jcmd "$TGT_PID" GC.run > /dev/null 2>&1 || true
sleep 2
zk_rss_gc=$(rss_kb "$TGT_PID")
say "ZooKeeper RSS holding the tree: $((zk_rss / 1024)) MiB, $((zk_rss_gc / 1024)) MiB after a full GC"
json_set zookeeper "{\"heap\": \"-Xmx$HEAP\", \"start_s\": $zk_start, \"rss_kb\": $zk_rss, \"rss_after_gc_kb\": $zk_rss_gc}"
tgt_stop
cp "$DIR/zk/zookeeper.log" "$R/zookeeper.log"
say "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$kk_start" "$zk_start" "$kk_rss" "$zk_rss" "$zk_rss_gc" "$(p99 writes-alone)" "$(p99 writes-snapshot)" "$before_kb" "$peak_kb" "$HEAP" "$import_s" <<'PY'
import sys
kk_s, zk_s, kk_rss, zk_rss, zk_gc, p_alone, p_snap, before, peak = map(float, sys.argv[1:10])
heap, imp = sys.argv[10], sys.argv[11]
zk_low = min(zk_rss, zk_gc)
def row(what, zk, kk, ratio, target, ok):
    print("| %s | %s | %s | %s | %s: %s |" % (what, zk, kk, ratio, target, "met" if ok else "not met"))
print()
print("| 1M znodes | ZooKeeper 3.8 (-Xmx%s) | keeperkit | ratio | target |" % heap)
print("|---|---|---|---|---|")
row("start to first answer", "%.2f s" % zk_s, "%.2f s (first start with --import: %s s)" % (kk_s, imp),
    "%.1fx faster" % (zk_s / kk_s), ">= 5x", zk_s / kk_s >= 5)
row("RSS holding the tree", "%.0f MiB (%.0f after a full GC)" % (zk_rss / 1024, zk_gc / 1024),
    "%.0f MiB" % (kk_rss / 1024), "%.2fx" % (kk_rss / zk_low), "<= 0.4x", kk_rss / zk_low <= 0.4)
row("write p99 while snapshots are written / without", "", "%.2f / %.2f ms" % (p_snap, p_alone),
    "%.2fx" % (p_snap / p_alone), "<= 2x", p_snap / p_alone <= 2)
row("peak RSS while snapshots are written / before", "", "%.0f / %.0f MiB" % (peak / 1024, before / 1024),
    "%.2fx" % (peak / before), "<= 1.1x", peak / before <= 1.1)
PY
