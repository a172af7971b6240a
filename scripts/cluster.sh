#!/usr/bin/env bash
# cluster.sh [start|stop|failover] [--dir DIR] [--base PORT]
#
# Three `keeperkit serve` replicas on 127.0.0.1, node N (1..3) with Raft port BASE+N,
# client port BASE+10+N, HTTP port BASE+20+N, data directory DIR/nN, log DIR/nN.log.
#
#   start     start the three (with --bootstrap: the first start creates the cluster,
#             later starts ignore it) and wait until one leads
#   stop      stop them (SIGTERM, by the pids in DIR/nN.pid)
#   failover  (default) a fresh cluster in a temporary DIR, scripts/failover.py against
#             it (kazoo, three-host connect string, SIGKILL of the leader while writing:
#             the session and every acknowledged write survive), then stop it
#
# Options: --dir DIR (default: a temporary directory for failover, required otherwise),
# --base PORT (default 24000; ports BASE+1..BASE+23 are used).
# Environment: KEEPERKIT = the keeperkit binary (default target/release/keeperkit, built
# when missing); KK_SECONDS = how long writes go on after the kill (default 5).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

CMD=failover DIR="" BASE=24000
while [ $# -gt 0 ]; do
  case "$1" in
    start|stop|failover) CMD="$1"; shift;;
    --dir) DIR="$2"; shift 2;;
    --base) BASE="$2"; shift 2;;
    -h|--help) usage 0;;
    *) echo "cluster: unknown argument $1" >&2; usage 2;;
  esac
done
KEEPERKIT="${KEEPERKIT:-$ROOT/target/release/keeperkit}"
if [ ! -x "$KEEPERKIT" ]; then
  (cd "$ROOT" && cargo build --release -q -p keeperkit-tools)
fi
PEERS="1=127.0.0.1:$((BASE + 1)):$((BASE + 11)),2=127.0.0.1:$((BASE + 2)):$((BASE + 12)),3=127.0.0.1:$((BASE + 3)):$((BASE + 13))"

http_get() {
  python3 - "$1" <<'PY'
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())
except Exception:
    sys.exit(1)
PY
}

start() {
  for n in 1 2 3; do
    "$KEEPERKIT" serve "$DIR/n$n" --id "$n" --peers "$PEERS" --bootstrap \
      --http-port $((BASE + 20 + n)) >"$DIR/n$n.out" 2>"$DIR/n$n.log" &
    echo $! >"$DIR/n$n.pid"
  done
  local deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    for n in 1 2 3; do
      if http_get "http://127.0.0.1:$((BASE + 20 + n))/status" 2>/dev/null | grep -q '"state":"leader".*"ready":true'; then
        echo "cluster: node $n leads (client ports $((BASE + 11))-$((BASE + 13)), data in $DIR)"
        return 0
      fi
    done
    sleep 0.2
  done
  echo "cluster: no leader within 30 s; logs in $DIR" >&2
  return 1
}

stop() {
  for n in 1 2 3; do
    if [ -f "$DIR/n$n.pid" ]; then
      kill "$(cat "$DIR/n$n.pid")" 2>/dev/null || true
    fi
  done
  for n in 1 2 3; do
    if [ -f "$DIR/n$n.pid" ]; then
      local pid; pid="$(cat "$DIR/n$n.pid")"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$DIR/n$n.pid"
    fi
  done
}

case "$CMD" in
  start) [ -n "$DIR" ] || { echo "cluster: start needs --dir" >&2; exit 2; }; mkdir -p "$DIR"; start;;
  stop) [ -n "$DIR" ] || { echo "cluster: stop needs --dir" >&2; exit 2; }; stop;;
  failover)
    TMP=""
    if [ -z "$DIR" ]; then TMP="$(mktemp -d)"; DIR="$TMP"; fi
    mkdir -p "$DIR"
    trap 'stop; [ -n "$TMP" ] && rm -rf "$TMP"' EXIT
    start
    KK_CLIENT_PORTS="$((BASE + 11)),$((BASE + 12)),$((BASE + 13))" \
    KK_HTTP_PORTS="$((BASE + 21)),$((BASE + 22)),$((BASE + 23))" \
    KK_PIDS="$(cat "$DIR/n1.pid"),$(cat "$DIR/n2.pid"),$(cat "$DIR/n3.pid")" \
      python3 "$HERE/failover.py" || { tail -n 20 "$DIR"/n*.log >&2; exit 1; }
    ;;
esac
