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

# shellcheck source=scripts/lib/zkserver.sh
. "$(dirname "${BASH_SOURCE[0]}")/zkserver.sh"

TGT_KIND="" TGT_DIR="" TGT_PORT="" TGT_PID=""
TGT_SERVE_ARGS=()
TGT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${KEEPERKIT:=$TGT_ROOT/target/release/keeperkit}"
TGT_COMMON=(tickTime=500 minSessionTimeout=1000 maxSessionTimeout=30000 forceSync=yes)

tgt_init() {
  TGT_KIND="$1" TGT_DIR="$2"; shift 2
  mkdir -p "$TGT_DIR/data"
  TGT_DIR="$(cd "$TGT_DIR" && pwd)"
  case "$TGT_KIND" in
    zookeeper) zk_init_dir "$TGT_DIR" "$TGT_DIR/data" "${TGT_COMMON[@]}" "$@";;
    keeperkit)
      [ -x "$KEEPERKIT" ] || { echo "error: $KEEPERKIT not found (cargo build --release -p keeperkit-tools)" >&2; return 1; }
      {
        local l
        # as zkserver.sh runs ZooKeeper: TTL nodes allowed, the container/TTL reaper
        # once a day (never during a test), no limit of connections per address
        for l in "${TGT_COMMON[@]}" "superDigest=$ZK_SUPER_DIGEST" "4lw.commands.whitelist=*" \
          extendedTypesEnabled=true containerCheckInterval=86400000 maxClientCnxns=0 "$@"; do echo "$l"; done
      } > "$TGT_DIR/keeperkit.cfg";;
    *) echo "error: unknown server kind $TGT_KIND (zookeeper | keeperkit)" >&2; return 1;;
  esac
}

tgt_4lw() { ZK_PORT="$TGT_PORT" zk_4lw "$1"; }

# tgt_launch [PORT]: starts the server and returns at once (no wait until it serves;
# a caller timing the start polls it itself). Sets TGT_PORT, TGT_PID.
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
  esac
}

tgt_start() {
  local want="${1:-}"
  case "$TGT_KIND" in
    zookeeper)
      ZK_WANT_PORT="$want" zk_start_ready "$TGT_DIR" "${TGT_ZK_HEAP:-1g}" 120 || return 1
      TGT_PORT=$ZK_PORT TGT_PID=$ZK_PID;;
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
  esac
  return 0
}
