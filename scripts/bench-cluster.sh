#!/usr/bin/env bash
# bench-cluster.sh [--dir DIR] [--duration S] [--clients N] [--kills K] [--targets "zookeeper keeperkit"]
#
# Three `keeperkit serve` replicas against a three-node Apache ZooKeeper 3.8 ensemble on
# this machine, in the same run, same disk, both durable (ZooKeeper forceSync=yes; keeperkit
# fsyncs its Raft log on every node before it acknowledges), all on 127.0.0.1:
#
#   writes      `keeperkit bench server` with a three-host connect string (client i talks
#               to server i mod 3; followers forward to the leader): create+setData 50/50,
#               1 KiB values, N clients (default 64), S seconds (default 10)
#   leader kill K times (default 3): a client connected to the two followers writes one
#               setData at a time; the leader gets SIGKILL; the time from the kill to the
#               first write sent after it that succeeds (scripts/lib/leader_kill.py); the
#               killed server is restarted and the ensemble is whole again before the next
#
# Prints per system ops/s, p50/p99/p99.9 and each kill's time, then a table with the
# ratios keeperkit / ZooKeeper (ops/s: higher is better; latency and kill-to-write: lower
# is better), and names the machine. JSON of every run in DIR/results/.
#
# Settings, the same for both where they exist: tickTime=500, minSessionTimeout=1000,
# maxSessionTimeout=30000; ZooKeeper initLimit=20, syncLimit=5 (its followers see a dead
# leader's socket close at once and elect); keeperkit --heartbeat-ms 100 (its default:
# an election after 6 to 12 heartbeats without a leader, or at once when the leader's
# connection ends and nothing listens on its Raft port any more).
#
# Options:
#   --dir DIR      where the data directories go (default: a temp dir under /tmp)
#   --duration S   seconds of write load (default 10)
#   --clients N    load generator clients (default 64)
#   --kills K      leader kills per system (default 3)
#   --targets T    systems to run (default "zookeeper keeperkit")
#   --quick        3 s of load, 1 kill (a smoke run)
# Environment: KEEPERKIT = the keeperkit binary (default target/release/keeperkit, built
# when missing); KEEPERKIT_PORT_RANGE=LO-HI limits the ports used (9 of them);
# KK_HEARTBEAT_MS = keeperkit's --heartbeat-ms (default 100).
# Every process started is stopped by its pid on exit; each step is bounded in time.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib/zkserver.sh
. "$HERE/lib/zkserver.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

DIR="" DURATION=10 CLIENTS=64 KILLS=3 TARGETS="zookeeper keeperkit"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --clients) CLIENTS="$2"; shift 2;;
    --kills) KILLS="$2"; shift 2;;
    --targets) TARGETS="$2"; shift 2;;
    --quick) DURATION=3; KILLS=1; shift;;
    -h|--help) usage 0;;
    *) echo "bench-cluster: unknown argument $1" >&2; usage 2;;
  esac
done
KEEPERKIT="${KEEPERKIT:-$ROOT/target/release/keeperkit}"
HEARTBEAT="${KK_HEARTBEAT_MS:-100}"
zk_check_deps || exit 2
if [ ! -x "$KEEPERKIT" ]; then
  (cd "$ROOT" && cargo build --release -q -p keeperkit-tools) || exit 2
fi
if [ -z "$DIR" ]; then DIR=$(mktemp -d /tmp/bench-cluster.XXXXXX); fi
mkdir -p "$DIR/results"
DIR="$(cd "$DIR" && pwd)"

# 9 distinct free ports of KEEPERKIT_PORT_RANGE (or any): per node client, peer/Raft,
# election/HTTP, for both systems (the systems run one after the other).
read -r -a PORTS <<< "$(python3 - "${KEEPERKIT_PORT_RANGE:-}" <<'PY'
import random, socket, sys
rng = sys.argv[1]
if rng:
    lo, hi = map(int, rng.split("-"))
    pool = random.sample(range(lo, hi + 1), hi - lo + 1)
else:
    pool = None
out = []
socks = []
while len(out) < 9:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", pool.pop() if pool else 0))
    except (OSError, IndexError):
        s.close()
        if pool is not None and not pool:
            sys.exit("no 9 free ports in " + rng)
        continue
    socks.append(s)
    out.append(s.getsockname()[1])
for s in socks:
    s.close()
print(" ".join(map(str, out)))
PY
)"
[ "${#PORTS[@]}" = 9 ] || { echo "bench-cluster: no free ports" >&2; exit 2; }
CP=("${PORTS[0]}" "${PORTS[1]}" "${PORTS[2]}")   # client ports
P2=("${PORTS[3]}" "${PORTS[4]}" "${PORTS[5]}")   # ZooKeeper quorum / keeperkit Raft
P3=("${PORTS[6]}" "${PORTS[7]}" "${PORTS[8]}")   # ZooKeeper election / keeperkit HTTP
CONNECT="127.0.0.1:${CP[0]},127.0.0.1:${CP[1]},127.0.0.1:${CP[2]}"
PIDS=("" "" "")

COMMON=(tickTime=500 minSessionTimeout=1000 maxSessionTimeout=30000 forceSync=yes
  "4lw.commands.whitelist=*" maxClientCnxns=0)

launch() {  # launch KIND N (0-based): starts node N, sets PIDS[N]
  local kind="$1" n="$2" d="$DIR/$1/n$2"
  case "$kind" in
    zookeeper)
      java -Xmx1g -cp "$d/conf:$ZK_JAR:$ZK_CP_EXTRA" \
        "-Dlog4j.configuration=file:$d/conf/log4j.properties" \
        org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/conf/zoo.cfg" \
        >> "$d/zookeeper.out" 2>&1 &
      PIDS[n]=$!;;
    keeperkit)
      local peers="1=127.0.0.1:${P2[0]}:${CP[0]},2=127.0.0.1:${P2[1]}:${CP[1]},3=127.0.0.1:${P2[2]}:${CP[2]}"
      RUST_LOG=${RUST_LOG:-info} "$KEEPERKIT" serve "$d/data" --bind 127.0.0.1 --config "$d/keeperkit.cfg" \
        --id $((n + 1)) --peers "$peers" --bootstrap --http-port "${P3[n]}" --heartbeat-ms "$HEARTBEAT" \
        >> "$d/keeperkit.log" 2>&1 &
      PIDS[n]=$!;;
  esac
}

init() {  # init KIND: fresh directories and configuration of the three nodes
  local kind="$1" n
  rm -rf "${DIR:?}/$kind"
  for n in 0 1 2; do
    local d="$DIR/$kind/n$n"
    mkdir -p "$d/data" "$d/conf"
    case "$kind" in
      zookeeper)
        echo $((n + 1)) > "$d/data/myid"
        {
          echo "dataDir=$d/data"
          echo "dataLogDir=$d/data"
          echo "clientPort=${CP[n]}"
          echo "clientPortAddress=127.0.0.1"
          echo "initLimit=20"
          echo "syncLimit=5"
          echo "admin.enableServer=false"
          echo "preAllocSize=65536"
          echo "autopurge.purgeInterval=0"
          printf '%s\n' "${COMMON[@]}"
          local m
          for m in 0 1 2; do echo "server.$((m + 1))=127.0.0.1:${P2[m]}:${P3[m]}"; done
        } > "$d/conf/zoo.cfg"
        cat > "$d/conf/log4j.properties" <<L4J
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=$d/zookeeper.log
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} [%t] %-5p %c{1} - %m%n
L4J
        ;;
      keeperkit) printf '%s\n' "${COMMON[@]}" > "$d/keeperkit.cfg";;
    esac
  done
}

state_of() {  # state_of PORT: mntr's zk_server_state
  ZK_PORT="$1" zk_4lw mntr | awk -F'\t' '$1 == "zk_server_state" { print $2 }'
}

wait_whole() {  # wait_whole: one leader and two followers, within 120 s
  local start=$SECONDS
  while [ $((SECONDS - start)) -lt 120 ]; do
    local s="" n
    for n in 0 1 2; do s="$s $(state_of "${CP[n]}")"; done
    case "$s" in
      *leader*) [ "$(echo "$s" | grep -o follower | wc -l)" = 2 ] && return 0;;
    esac
    sleep 0.2
  done
  echo "bench-cluster: the ensemble is not whole after 120 s (states:$s)" >&2
  return 1
}

stop_all() {
  local n
  for n in 0 1 2; do
    local pid="${PIDS[n]}"
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || true
  done
  for n in 0 1 2; do
    local pid="${PIDS[n]}"
    [ -n "$pid" ] || continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    PIDS[n]=""
  done
}
cleanup() { local rc=$?; stop_all; exit "$rc"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench-cluster: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
echo "bench-cluster: load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)"
echo "bench-cluster: data on $(df -hT "$DIR" | awk 'NR == 2 {print $1 " (" $2 ", " $3 ")"}') at $DIR; $DURATION s of writes, $CLIENTS clients, $KILLS leader kills"
for kind in $TARGETS; do
  init "$kind"
  for n in 0 1 2; do launch "$kind" "$n"; done
  wait_whole || { tail -n 5 "$DIR/$kind"/n*/*.log >&2; exit 1; }
  set +e
  timeout $((DURATION + 180)) "$KEEPERKIT" bench server --connect "$CONNECT" --clients "$CLIENTS" \
    --duration "$DURATION" --mix create=50,set=50 --value-size 1024 --nodes 1000 --json \
    > "$DIR/results/$kind-write.json" 2> "$DIR/results/$kind-write.err"
  rc=$?
  set -e
  if [ "$rc" != 0 ]; then
    echo "bench-cluster: $kind writes failed: $(head -3 "$DIR/results/$kind-write.err")" >&2
    rm -f "$DIR/results/$kind-write.json"
  else
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); a=r["all"]
print("bench-cluster: %-9s writes %9.0f ops/s  p50 %7.3f  p99 %7.3f  p99.9 %7.3f ms  (%d errors)" % (sys.argv[2], r["ops_per_s"], a["p50_ms"], a["p99_ms"], a["p999_ms"], r["errors"]))' \
      "$DIR/results/$kind-write.json" "$kind"
  fi
  : > "$DIR/results/$kind-kills.jsonl"
  for k in $(seq 1 "$KILLS"); do
    wait_whole || break
    set +e
    out=$(timeout 120 python3 "$HERE/lib/leader_kill.py" "${CP[0]},${CP[1]},${CP[2]}" \
      "${PIDS[0]},${PIDS[1]},${PIDS[2]}" 60 2> "$DIR/results/$kind-kill-$k.err")
    rc=$?
    set -e
    if [ "$rc" != 0 ] || [ -z "$out" ]; then
      echo "bench-cluster: $kind leader kill $k failed: $(head -3 "$DIR/results/$kind-kill-$k.err")" >&2
      break
    fi
    echo "$out" >> "$DIR/results/$kind-kills.jsonl"
    killed=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["killed"])' "$out")
    echo "bench-cluster: $kind leader kill $k: $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["kill_to_write_ms"])' "$out") ms to the first write (node $((killed + 1)) killed)"
    wait "${PIDS[killed]}" 2>/dev/null || true
    launch "$kind" "$killed"
  done
  stop_all
  rm -rf "${DIR:?}/$kind"/n*/data/version-2 "${DIR:?}/$kind"/n*/data/*.kks 2>/dev/null || true
done
echo "bench-cluster: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$DIR/results" <<'PY'
import json, os, statistics, sys
d = sys.argv[1]
def load(kind):
    p = os.path.join(d, "%s-write.json" % kind)
    return json.load(open(p)) if os.path.exists(p) else None
def kills(kind):
    p = os.path.join(d, "%s-kills.jsonl" % kind)
    if not os.path.exists(p):
        return []
    return [json.loads(l)["kill_to_write_ms"] for l in open(p) if l.strip()]
def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "n/a"
z, k = load("zookeeper"), load("keeperkit")
zk, kk = kills("zookeeper"), kills("keeperkit")
f = lambda r: "%.0f" % r["ops_per_s"] if r else "n/a"
l = lambda r, q: "%.2f" % r["all"][q] if r else "n/a"
m = lambda xs: statistics.median(xs) if xs else None
s = lambda xs: "%.0f (%s)" % (m(xs), ", ".join("%.0f" % x for x in xs)) if xs else "n/a"
print()
print("| measure | ZooKeeper 3.8 ensemble | keeperkit, 3 replicas | keeperkit / ZooKeeper | target |")
print("|---|---|---|---|---|")
print("| writes ops/s | %s | %s | %s | >= 1.5x |" % (f(z), f(k), ratio(k and k["ops_per_s"], z and z["ops_per_s"])))
print("| write p50 ms | %s | %s | %s | |" % (l(z, "p50_ms"), l(k, "p50_ms"), ratio(k and k["all"]["p50_ms"], z and z["all"]["p50_ms"])))
print("| write p99 ms | %s | %s | %s | <= 1x |" % (l(z, "p99_ms"), l(k, "p99_ms"), ratio(k and k["all"]["p99_ms"], z and z["all"]["p99_ms"])))
print("| write p99.9 ms | %s | %s | %s | |" % (l(z, "p999_ms"), l(k, "p999_ms"), ratio(k and k["all"]["p999_ms"], z and z["all"]["p999_ms"])))
print("| leader kill to first write, ms: median (each) | %s | %s | %s | <= 1x |" % (s(zk), s(kk), ratio(m(kk), m(zk))))
PY
