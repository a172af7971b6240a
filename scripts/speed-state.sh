#!/usr/bin/env bash
# speed-state.sh DIR [--runs R] [--nodes N] [--strict] [--no-zookeeper] [--keep-native]
#
# Times keeperkit's state commands on a ZooKeeper data directory side by side with
# ZooKeeper 3.8's own load of the same directory, in one run, and prints the figures
# and the ratios the project targets (README, "State commands on 1M znodes"):
#
#   recovery                 >= 5x faster than ZooKeeper's "Snapshot loaded in"
#   stats, sessions, dump    each <= 1.2x recovery alone (wall time of the whole command,
#                            output to /dev/null, against the in-process recovery time
#                            of the same run; the median over the runs)
#   diff DATA NATIVE         <= 1.2x recovering both sides, peak RSS <= the two
#                            recoveries' peak RSS added up
#
# DIR is what scripts/make-1m.sh makes (DIR/data = ZooKeeper's dataDir); when DIR/data
# does not exist it is generated first with make-1m.sh (--nodes N, default 1000000: ~10
# min). ZooKeeper's load is measured by `make-1m.sh DIR --skip-gen --runs R` (fresh copy
# per run, figures from the server's own log). The native side of the diff is
# `keeperkit convert DIR/data DIR/native --to native`, made by this script (removed at
# the end unless --keep-native).
#
# Each keeperkit figure is the median of R runs (default 3). Recovery alone is the
# in-process time of the recover phase (`KEEPERKIT_TIMINGS=1`: "timing: recover S"),
# taken from the `sessions` runs; wall time and peak RSS come from /usr/bin/time.
# Writes DIR/speed-state.json. Exit status: 0, or 1 with --strict when a target is
# missed (2 on usage errors or when a command fails).
#
#   nice -n 10 scripts/speed-state.sh /work/tmp/speed/zk1m
#   KEEPERKIT_PORT_RANGE=25000-25999 scripts/speed-state.sh DIR --runs 3 --strict
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

DIR="" RUNS=3 NODES=1000000 STRICT=0 ZK=1 KEEP_NATIVE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2;;
    --nodes) NODES="$2"; shift 2;;
    --strict) STRICT=1; shift;;
    --no-zookeeper) ZK=0; shift;;
    --keep-native) KEEP_NATIVE=1; shift;;
    -h|--help) usage 0;;
    -*) echo "speed-state: unknown option $1" >&2; usage 2;;
    *) [ -z "$DIR" ] || { echo "speed-state: one DIR only" >&2; usage 2; }; DIR="$1"; shift;;
  esac
done
[ -n "$DIR" ] || { echo "speed-state: DIR is required" >&2; usage 2; }
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || { echo "speed-state: --runs must be >= 1" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "speed-state: /usr/bin/time (GNU time) is required" >&2; exit 2; }

(cd "$ROOT" && cargo build --release -q -p keeperkit-tools)
KK="$ROOT/target/release/keeperkit"

if [ ! -d "$DIR/data/version-2" ]; then
  echo "speed-state: $DIR/data missing: generating $NODES znodes with make-1m.sh"
  "$HERE/make-1m.sh" "$DIR" --nodes "$NODES" --runs 1
fi
DIR="$(cd "$DIR" && pwd)"
DATA="$DIR/data"
NATIVE="$DIR/native"
WORK="$(mktemp -d)"
cleanup() {
  local rc=$?
  rm -rf "$WORK"
  if [ "$KEEP_NATIVE" = 0 ]; then rm -rf "$NATIVE"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- ZooKeeper's own load ------------------------------------------------------------
if [ "$ZK" = 1 ]; then
  echo "speed-state: ZooKeeper 3.8 loading $DATA ($RUNS runs) ..."
  "$HERE/make-1m.sh" "$DIR" --skip-gen --runs "$RUNS" > "$WORK/zk.log" 2>&1 || {
    cat "$WORK/zk.log" >&2; echo "speed-state: ZooKeeper run failed" >&2; exit 2; }
fi

# ---- the native conversion (the other side of the diff) ------------------------------
rm -rf "$NATIVE"
"$KK" convert "$DATA" "$NATIVE" --to native > /dev/null

# run NAME ARGS...: one timed run; appends "NAME wall_s rss_kb recover_s..." to $WORK/runs
run() {
  local name="$1"; shift
  sync
  local rc=0 t rec
  KEEPERKIT_TIMINGS=1 /usr/bin/time -f "time: %e %M" -o "$WORK/time" "$KK" "$@" \
    > /dev/null 2> "$WORK/err" || rc=$?
  # exit 1 = "found something" (diff differences, findings): still a complete run.
  if [ "$rc" != 0 ] && [ "$rc" != 1 ]; then
    cat "$WORK/err" >&2; echo "speed-state: keeperkit $* failed ($rc)" >&2; exit 2
  fi
  t=$(awk '/^time:/ { print $2, $3 }' "$WORK/time")
  rec=$(awk '/^timing: recover/ { printf "%s ", $3 }' "$WORK/err")
  echo "$name $t $rec" >> "$WORK/runs"
}

echo "speed-state: keeperkit ($RUNS runs of each command) ..."
for i in $(seq 1 "$RUNS"); do
  run sessions sessions "$DATA"
  run native sessions "$NATIVE"
  run stats stats "$DATA"
  run dump dump "$DATA"
  run dump_json dump --json "$DATA"
  run diff diff "$DATA" "$NATIVE"
done

python3 - "$WORK/runs" "$DIR/zk-load.json" "$ZK" "$STRICT" "$DIR/speed-state.json" "$RUNS" <<'PY'
import json, os, platform, statistics, sys
runs_file, zk_file, zk_on, strict, out, nruns = sys.argv[1:7]
rows = {}
for line in open(runs_file):
    f = line.split()
    rows.setdefault(f[0], []).append(
        {"wall": float(f[1]), "rss_mb": int(f[2]) / 1024, "recover": [float(x) for x in f[3:]]})
med = lambda xs: statistics.median(xs)
wall = {k: med([r["wall"] for r in v]) for k, v in rows.items()}
rss = {k: med([r["rss_mb"] for r in v]) for k, v in rows.items()}
rec_zk = med([r["recover"][0] for r in rows["sessions"]])
rec_native = med([r["recover"][0] for r in rows["native"]])
zk_ms = None
if zk_on == "1" and os.path.exists(zk_file):
    z = json.load(open(zk_file))
    zk_ms = med([r["load_total_ms"] for r in z["runs"] if "load_total_ms" in r])
load = os.getloadavg()
res = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                   "loadavg_at_end": [round(x, 2) for x in load]},
       "runs": int(nruns), "recover_s": rec_zk, "recover_native_s": rec_native,
       "zookeeper_load_s": zk_ms / 1000 if zk_ms else None,
       "wall_s": wall, "peak_rss_mb": rss, "targets": []}
def target(name, value, limit, ok, what):
    res["targets"].append({"name": name, "value": round(value, 3), "limit": limit, "met": ok, "what": what})

print(f"\nmachine: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end")
print(f"median of {nruns} runs\n")
print(f"{'':44} {'wall s':>8} {'peak RSS MB':>12}")
print(f"{'recovery alone (in-process), ZooKeeper dir':44} {rec_zk:8.2f}")
print(f"{'recovery alone (in-process), native dir':44} {rec_native:8.2f}")
if zk_ms:
    print(f"{'ZooKeeper 3.8 load (Snapshot loaded in)':44} {zk_ms / 1000:8.2f}")
for k, label in [("sessions", "keeperkit sessions"), ("stats", "keeperkit stats"),
                 ("dump", "keeperkit dump > /dev/null"), ("dump_json", "keeperkit dump --json > /dev/null"),
                 ("native", "keeperkit sessions (native dir)"), ("diff", "keeperkit diff DATA NATIVE")]:
    print(f"{label:44} {wall[k]:8.2f} {rss[k]:12.0f}")
print()
if zk_ms:
    r = zk_ms / 1000 / rec_zk
    target("recovery vs ZooKeeper", r, ">= 5", r >= 5, "ZooKeeper load / keeperkit recovery")
# Each run of a command times its own recovery (this VM's page-fault cost moves a
# recovery by up to 40% from one run to the next), so a command is compared with the
# recovery of the same run: the median over the runs of wall / that run's recovery.
for k in ["stats", "sessions", "dump", "dump_json"]:
    r = med([x["wall"] / x["recover"][0] for x in rows[k]])
    target(f"{k} vs recovery", r, "<= 1.2", r <= 1.2, f"{k} wall / its own run's recovery")
both = rec_zk + rec_native
r = wall["diff"] / both
target("diff vs both recoveries", r, "<= 1.2", r <= 1.2, "diff wall / (recovery A + recovery B)")
two = rss["sessions"] + rss["native"]
r = rss["diff"] / two
target("diff memory vs both trees", r, "<= 1.0", r <= 1.0,
       f"diff peak RSS / ({rss['sessions']:.0f} + {rss['native']:.0f} MB, each recovery's peak RSS)")
missed = 0
for t in res["targets"]:
    mark = "met" if t["met"] else "MISSED"
    missed += 0 if t["met"] else 1
    print(f"{t['name']:28} {t['value']:6.2f}x  (target {t['limit']:>6})  {mark}   {t['what']}")
json.dump(res, open(out, "w"), indent=1)
print(f"\nwrote {out}")
sys.exit(1 if missed and strict == "1" else 0)
PY
