# shellcheck shell=bash
# One interface over the two servers the client tests run against: Apache ZooKeeper 3.8
# (Debian package, through zkserver.sh) and `keeperkit serve`. Sourced by scripts/.
#
#   tgt_init KIND DIR [zoo.cfg lines...]   KIND zookeeper | keeperkit; DIR/data is the data
#                                          directory; the lines go to zoo.cfg (ZooKeeper) or
#                                          to the --config file (keeperkit), same names
#   tgt_start [PORT]                       starts it on 127.0.0.1 (a free port, or PORT: a
#                                          restart keeps the port clients know); waits until
#                                          it serves; sets TGT_PORT, TGT_PID
#   (TGT_ZK_HEAP: the JVM heap of ZooKeeper, default 1g)
#   (TGT_SERVE_ARGS: an array of more `keeperkit serve` arguments, e.g. (--import DIR))
#   tgt_launch [PORT]                      starts it and returns at once (sets TGT_PORT, TGT_PID)
#   tgt_stop                               SIGTERM (SIGKILL after 30 s) the server we started
#   tgt_4lw CMD                            a four-letter word's answer
#
# Both run with the same settings: tickTime=500, minSessionTimeout=1000,
# maxSessionTimeout=30000, the super digest of super:superpw, every four-letter word
# allowed, forceSync=yes. KEEPERKIT = the keeperkit binary (default target/release/keeperkit).
# A caller must `trap tgt_stop EXIT` (or call it from its own cleanup).
#
# Three-member clusters: KIND keeperkit3 (`keeperkit serve --id N --peers ... --bootstrap
# --http-port H`) or zookeeper3 (a ZooKeeper 3.8 ensemble: server.N lines, myid,
# quorum and election ports, initLimit=10, syncLimit=5), member N in DIR/nN, every port
# picked once by tgt_init (a member restarts on its own ports). The same calls, and:
#   tgt_start                              starts the three, waits until each serves and
#                                          one leads (a keeperkit member: /ready; a
#                                          ZooKeeper member: srvr says leader or follower)
#   tgt_node_stop N [kill]                 stops member N (SIGTERM, or SIGKILL with kill)
#   tgt_node_start N                       starts member N again and waits until it serves
#   tgt_leader                             prints the number of the member that leads
#   tgt_4lw CMD [N]                        the answer of member N (default 1)
#   TGT_HOSTS                              the connect string 127.0.0.1:P1,127.0.0.1:P2,...
#   TGT_PORTS, TGT_PIDS                    arrays: client port and pid of each member (an
#                                          empty pid: stopped); TGT_PORT = TGT_PORTS[0]
# A single server sets TGT_HOSTS=127.0.0.1:TGT_PORT and TGT_PORTS=(TGT_PORT) too.

# shellcheck source=scripts/lib/zkserver.sh
. "$(dirname "${BASH_SOURCE[0]}")/zkserver.sh"
. "$(dirname "${BASH_SOURCE[0]}")/zkserver.sh"

TGT_KIND="" TGT_DIR="" TGT_PORT="" TGT_PID="" TGT_HOSTS=""
TGT_PORTS=() TGT_PIDS=()
TGT_SERVE_ARGS=()
TGT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${KEEPERKIT:=$TGT_ROOT/target/release/keeperkit}"
TGT_COMMON=(tickTime=500 minSessionTimeout=1000 maxSessionTimeout=30000 forceSync=yes)
# a cluster's other ports: keeperkit's Raft and HTTP ports, ZooKeeper's quorum and
# election ports (member N at index N-1)
TGT_PEER_PORTS=() TGT_AUX_PORTS=()

tgt_is_cluster() { [ "$TGT_KIND" = keeperkit3 ] || [ "$TGT_KIND" = zookeeper3 ]; }

# tgt_free_ports N: N distinct free ports (zk_free_port's rules), one a line.
tgt_free_ports() {
  local n="$1" got=() p
  while [ ${#got[@]} -lt "$n" ]; do
    p=$(zk_free_port) || return 1
    [[ " ${got[*]} " == *" $p "* ]] || got+=("$p")
  done
  printf '%s\n' "${got[@]}"
}

tgt_keeperkit_cfg() {   # FILE lines...
  local f="$1" l; shift
  # as zkserver.sh runs ZooKeeper: TTL nodes allowed, the container/TTL reaper once a
  # day (never during a test), no limit of connections per address
  for l in "${TGT_COMMON[@]}" "superDigest=$ZK_SUPER_DIGEST" "4lw.commands.whitelist=*" \
    extendedTypesEnabled=true containerCheckInterval=86400000 maxClientCnxns=0 "$@"; do echo "$l"; done > "$f"
}

tgt_init() {
  TGT_KIND="$1" TGT_DIR="$2"; shift 2
  TGT_PORTS=() TGT_PIDS=() TGT_PEER_PORTS=() TGT_AUX_PORTS=() TGT_HOSTS="" TGT_PORT=""
  mkdir -p "$TGT_DIR"
  TGT_DIR="$(cd "$TGT_DIR" && pwd)"
  case "$TGT_KIND" in
    zookeeper) mkdir -p "$TGT_DIR/data"; zk_init_dir "$TGT_DIR" "$TGT_DIR/data" "${TGT_COMMON[@]}" "$@";;
    keeperkit)
      [ -x "$KEEPERKIT" ] || { echo "error: $KEEPERKIT not found (cargo build --release -p keeperkit-tools)" >&2; return 1; }
      mkdir -p "$TGT_DIR/data"
      tgt_keeperkit_cfg "$TGT_DIR/keeperkit.cfg" "$@";;
    keeperkit3|zookeeper3)
      if [ "$TGT_KIND" = keeperkit3 ] && [ ! -x "$KEEPERKIT" ]; then
        echo "error: $KEEPERKIT not found (cargo build --release -p keeperkit-tools)" >&2; return 1
      fi
      local ports n range="${KEEPERKIT_PORT_RANGE:-}"
      if [ -z "$range" ]; then
        # below the kernel's ephemeral range: a member restarts on its ports, which an
        # outgoing connection must not have taken meanwhile
        local lo
        lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
        range="10000-$((lo - 1))"
      fi
      mapfile -t ports < <(KEEPERKIT_PORT_RANGE=$range tgt_free_ports 9)
      [ ${#ports[@]} = 9 ] || { echo "error: no 9 free ports in $range" >&2; return 1; }
      TGT_PORTS=("${ports[@]:0:3}") TGT_PEER_PORTS=("${ports[@]:3:3}") TGT_AUX_PORTS=("${ports[@]:6:3}")
      TGT_PIDS=("" "" "")
      TGT_PORT=${TGT_PORTS[0]}
      TGT_HOSTS="127.0.0.1:${TGT_PORTS[0]},127.0.0.1:${TGT_PORTS[1]},127.0.0.1:${TGT_PORTS[2]}"
      for n in 1 2 3; do mkdir -p "$TGT_DIR/n$n/data"; done
      if [ "$TGT_KIND" = keeperkit3 ]; then
        tgt_keeperkit_cfg "$TGT_DIR/keeperkit.cfg" "$@"
      else
        local servers=()
        for n in 1 2 3; do
          servers+=("server.$n=127.0.0.1:${TGT_PEER_PORTS[n-1]}:${TGT_AUX_PORTS[n-1]}:participant;127.0.0.1:${TGT_PORTS[n-1]}")
        done
        for n in 1 2 3; do
          echo "$n" > "$TGT_DIR/n$n/data/myid"
          zk_init_dir "$TGT_DIR/n$n" "$TGT_DIR/n$n/data" "${TGT_COMMON[@]}" initLimit=10 syncLimit=5 \
            "${servers[@]}" "$@"
        done
      fi;;
    *) echo "error: unknown server kind $TGT_KIND (zookeeper | keeperkit | zookeeper3 | keeperkit3)" >&2; return 1;;
  esac
}

tgt_4lw() {
  local n="${2:-1}" port="$TGT_PORT"
  tgt_is_cluster && port=${TGT_PORTS[n-1]}
  ZK_PORT="$port" zk_4lw "$1"
}

# tgt_launch [PORT]: starts the server and returns at once (no wait until it serves;
# a caller timing the start polls it itself). Sets TGT_PORT, TGT_PID. One server only.
tgt_launch() {
  local want="${1:-}"
  case "$TGT_KIND" in
    zookeeper)
      ZK_WANT_PORT="$want" zk_start "$TGT_DIR" "${TGT_ZK_HEAP:-1g}"
      TGT_PORT=$ZK_PORT TGT_PID=$ZK_PID;;
    keeperkit)
      TGT_PORT=${want:-$(zk_free_port)}
      : > "$TGT_DIR/keeperkit.log"
      RUST_LOG=${RUST_LOG:-info} "$KEEPERKIT" serve "$TGT_DIR/data" --bind 127.0.0.1 --port "$TGT_PORT" \
        --config "$TGT_DIR/keeperkit.cfg" "${TGT_SERVE_ARGS[@]}" >> "$TGT_DIR/keeperkit.log" 2>&1 &
      TGT_PID=$!;;
    *) echo "error: tgt_launch runs one server, not $TGT_KIND" >&2; return 1;;
  esac
  TGT_HOSTS="127.0.0.1:$TGT_PORT" TGT_PORTS=("$TGT_PORT")
}

# tgt_node_launch N: starts member N of a cluster and returns at once.
tgt_node_launch() {
  local n="$1" d="$TGT_DIR/n$1" peers="" m
  case "$TGT_KIND" in
    zookeeper3)
      ZK_WANT_PORT=${TGT_PORTS[n-1]} zk_start "$d" "${TGT_ZK_HEAP:-512m}"
      TGT_PIDS[n-1]=$ZK_PID;;
    keeperkit3)
      for m in 1 2 3; do peers+="${peers:+,}$m=127.0.0.1:${TGT_PEER_PORTS[m-1]}:${TGT_PORTS[m-1]}"; done
      RUST_LOG=${RUST_LOG:-info} "$KEEPERKIT" serve "$d/data" --id "$n" --peers "$peers" --bootstrap \
        --bind 127.0.0.1 --http-port "${TGT_AUX_PORTS[n-1]}" --config "$TGT_DIR/keeperkit.cfg" \
        "${TGT_SERVE_ARGS[@]}" >> "$d/keeperkit.log" 2>&1 &
      TGT_PIDS[n-1]=$!;;
  esac
}

# tgt_node_serves N: 0 when member N serves clients within a working quorum.
tgt_node_serves() {
  local n="$1"
  case "$TGT_KIND" in
    zookeeper3) tgt_4lw srvr "$n" | grep -Eq '^Mode: (leader|follower)$';;
    keeperkit3)
      python3 - "${TGT_AUX_PORTS[n-1]}" <<'PY' 2>/dev/null
import json, sys, urllib.request
try:
    r = json.loads(urllib.request.urlopen("http://127.0.0.1:%s/ready" % sys.argv[1], timeout=2).read())
except Exception:
    sys.exit(1)
sys.exit(0 if r.get("ready") else 1)
PY
      ;;
  esac
}

tgt_node_log() {
  case "$TGT_KIND" in
    zookeeper3) echo "$TGT_DIR/n$1/zookeeper.log";;
    keeperkit3) echo "$TGT_DIR/n$1/keeperkit.log";;
  esac
}

# tgt_wait_nodes TIMEOUT_S N...: 0 once every member N serves; 1 (with the log of one
# that does not) when one exited or the time ran out.
tgt_wait_nodes() {
  local timeout="$1" start=$SECONDS n left; shift
  while [ $((SECONDS - start)) -lt "$timeout" ]; do
    left=()
    for n in "$@"; do
      tgt_node_serves "$n" && continue
      if ! kill -0 "${TGT_PIDS[n-1]}" 2>/dev/null; then
        echo "error: member $n exited; its log ends with:" >&2
        tail -5 "$(tgt_node_log "$n")" >&2
        return 1
      fi
      left+=("$n")
    done
    [ ${#left[@]} = 0 ] && return 0
    sleep 0.2
  done
  echo "error: member(s) ${left[*]} not serving after ${timeout} s; the log of ${left[0]} ends with:" >&2
  tail -5 "$(tgt_node_log "${left[0]}")" >&2
  return 1
}

tgt_node_start() {
  tgt_node_launch "$1"
  tgt_wait_nodes 120 "$1"
}

tgt_node_stop() {
  local n="$1" how="${2:-term}" pid="${TGT_PIDS[$1-1]}"
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    if [ "$how" = kill ]; then
      kill -9 "$pid" 2>/dev/null || true
    else
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
  fi
  { wait "$pid"; } 2>/dev/null || true
  TGT_PIDS[n-1]=""
  return 0
}

tgt_leader() {
  local n
  for n in 1 2 3; do
    [ -n "${TGT_PIDS[n-1]}" ] || continue
    if tgt_4lw srvr "$n" | grep -q '^Mode: leader$'; then echo "$n"; return 0; fi
  done
  return 1
}

tgt_start() {
  local want="${1:-}"
  case "$TGT_KIND" in
    zookeeper)
      ZK_WANT_PORT="$want" zk_start_ready "$TGT_DIR" "${TGT_ZK_HEAP:-1g}" 120 || return 1
      TGT_PORT=$ZK_PORT TGT_PID=$ZK_PID TGT_HOSTS="127.0.0.1:$ZK_PORT" TGT_PORTS=("$ZK_PORT");;
    keeperkit)
      local i
      for i in 1 2 3; do
        tgt_launch "$want"
        local start=$SECONDS
        while [ $((SECONDS - start)) -lt 120 ]; do
          [ "$(tgt_4lw ruok)" = imok ] && return 0
          kill -0 "$TGT_PID" 2>/dev/null || break
          sleep 0.1
        done
        tgt_stop
        grep -qi "address already in use" "$TGT_DIR/keeperkit.log" && [ -z "$want" ] && continue
        echo "error: keeperkit serve did not start; its log ends with:" >&2
        tail -5 "$TGT_DIR/keeperkit.log" >&2
        return 1
      done
      return 1;;
    keeperkit3|zookeeper3)
      local n
      for n in 1 2 3; do tgt_node_launch "$n"; done
      tgt_wait_nodes 120 1 2 3 || { tgt_stop; return 1; }
      local start=$SECONDS
      until tgt_leader >/dev/null; do
        [ $((SECONDS - start)) -lt 30 ] || { echo "error: no member leads" >&2; tgt_stop; return 1; }
        sleep 0.2
      done;;
  esac
}

tgt_stop() {
  case "$TGT_KIND" in
    zookeeper) zk_stop; TGT_PID="";;
    keeperkit)
      if [ -n "$TGT_PID" ]; then
        if kill -0 "$TGT_PID" 2>/dev/null; then
          kill "$TGT_PID" 2>/dev/null || true
          for _ in $(seq 1 300); do kill -0 "$TGT_PID" 2>/dev/null || break; sleep 0.1; done
          kill -0 "$TGT_PID" 2>/dev/null && kill -9 "$TGT_PID" 2>/dev/null
        fi
        wait "$TGT_PID" 2>/dev/null || true
        TGT_PID=""
      fi;;
    keeperkit3|zookeeper3)
      local n pid
      # SIGTERM to all at once (members that wait for each other stop together), then
      # each one as tgt_node_stop does
      for pid in "${TGT_PIDS[@]}"; do if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; done
      for n in 1 2 3; do tgt_node_stop "$n"; done;;
  esac
  return 0
}
