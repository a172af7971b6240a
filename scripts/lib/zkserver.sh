# shellcheck shell=bash
# Helpers to run a throw-away Apache ZooKeeper 3.8.0 server (Debian package) on
# 127.0.0.1 over an existing data directory. Sourced by the scripts in scripts/.
#
#   zk_init_dir DIR DATA [extra zoo.cfg lines...]   writes DIR/conf/{zoo.cfg.in,log4j.properties}
#                                                    (__PORT__, __PORT2__, __PORT3__ in the extra
#                                                    lines become free ports at each start)
#   zk_start DIR [HEAP]                              starts it (free port, retried on a port race;
#                                                    KEEPERKIT_PORT_RANGE=LO-HI limits the ports)
#                                                    sets ZK_PID, ZK_PORT; log in DIR/zookeeper.log
#   zk_wait_ready [TIMEOUT_S]                        0 once it serves (`srvr` has a Zxid), 1 if it died
#   zk_stop                                          SIGTERM (then SIGKILL after 30 s) our server
#   zk_4lw CMD                                       prints the answer of a four-letter word
#
# Everything listens on 127.0.0.1 only. A caller must `trap zk_stop EXIT` (or call it
# from its own cleanup) so that no server outlives the script.

ZK_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ZK_JAR=/usr/share/java/zookeeper.jar
ZK_CP_EXTRA=/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar
# super:superpw (base64(SHA-1("super:superpw")), the same as zkgen): a client that does
# `addauth digest super:superpw` may read every node whatever its ACL.
ZK_SUPER_DIGEST='super:g9oN2HttPfn8MMWJZ2r45Np/LIA='
export ZK_SUPER_AUTH='super:superpw'   # for callers' clients (zk_dump_tree.py has it built in)
ZK_PID=""
ZK_PORT=""
ZK_DIR=""

zk_check_deps() {
  command -v java >/dev/null || { echo "error: java not found (apt-get install -y zookeeper)" >&2; return 1; }
  [ -f "$ZK_JAR" ] || { echo "error: $ZK_JAR missing (apt-get install -y zookeeper)" >&2; return 1; }
  python3 -c 'import kazoo' 2>/dev/null || { echo "error: python kazoo missing (pip install kazoo)" >&2; return 1; }
}

# A free port on 127.0.0.1: one the kernel picks, or a random free one of
# KEEPERKIT_PORT_RANGE=LO-HI when that is set (to keep parallel runs apart).
zk_free_port() {
  python3 - "${KEEPERKIT_PORT_RANGE:-}" <<'PY'
import random, socket, sys
rng = sys.argv[1]
ports = [0]
if rng:
    lo, hi = (int(x) for x in rng.split("-"))
    ports = random.sample(range(lo, hi + 1), min(200, hi - lo + 1))
for p in ports:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        print(s.getsockname()[1])
        sys.exit(0)
sys.exit("no free port in " + rng)
PY
}

# zk_init_dir DIR DATA [extra zoo.cfg lines...]
#   DATA is the directory that holds version-2/ (dataDir = dataLogDir).
zk_init_dir() {
  local dir="$1" data="$2"; shift 2
  mkdir -p "$dir/conf"
  ZK_DIR="$(cd "$dir" && pwd)"
  data="$(cd "$data" && pwd)"
  {
    echo "tickTime=2000"
    echo "dataDir=$data"
    echo "dataLogDir=$data"
    echo "clientPort=__PORT__"
    echo "clientPortAddress=127.0.0.1"
    echo "maxClientCnxns=0"
    echo "minSessionTimeout=4000"
    echo "maxSessionTimeout=600000"
    echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=*"
    echo "extendedTypesEnabled=true"
    echo "preAllocSize=64"
    echo "autopurge.purgeInterval=0"
    local l; for l in "$@"; do echo "$l"; done
  } > "$ZK_DIR/conf/zoo.cfg.in"
  cat > "$ZK_DIR/conf/log4j.properties" <<L4J
log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=$ZK_DIR/zookeeper.log
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} [%t] %-5p %c{1} - %m%n
L4J
}

# zk_start DIR [HEAP] [CONTAINER_CHECK_MS]
#   The container/TTL reaper interval defaults to one day so that the server does not
#   change the tree (deleteContainer txns) while it is being read.
zk_start() {
  local dir="$1" heap="${2:-1g}" ccheck="${3:-86400000}"
  ZK_DIR="$(cd "$dir" && pwd)"
  ZK_PORT=${ZK_WANT_PORT:-$(zk_free_port)}   # ZK_WANT_PORT: a restart on the same port
  # __PORT__ = client port; __PORT2__/__PORT3__ = quorum/election ports (ensemble mode)
  sed -e "s/__PORT__/$ZK_PORT/g" -e "s/__PORT2__/$(zk_free_port)/g" -e "s/__PORT3__/$(zk_free_port)/g" \
    "$ZK_DIR/conf/zoo.cfg.in" > "$ZK_DIR/conf/zoo.cfg"
  rm -f "$ZK_DIR/conf/zoo.cfg.dynamic"* "$ZK_DIR/conf/zoo.cfg.bak"
  : > "$ZK_DIR/zookeeper.log"
  java "-Xmx$heap" -cp "$ZK_DIR/conf:$ZK_JAR:$ZK_CP_EXTRA" \
    "-Dlog4j.configuration=file:$ZK_DIR/conf/log4j.properties" \
    "-Dzookeeper.DigestAuthenticationProvider.superDigest=$ZK_SUPER_DIGEST" \
    "-Dznode.container.checkIntervalMs=$ccheck" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZK_DIR/conf/zoo.cfg" \
    > "$ZK_DIR/zookeeper.out" 2>&1 &
  ZK_PID=$!
}

zk_4lw() {
  python3 "$ZK_LIB_DIR/fourlw.py" "$ZK_PORT" "$1" 2>/dev/null || true
}

# zk_wait_ready [TIMEOUT_S]: 0 when the server serves requests (`srvr` shows a Zxid line;
# `ruok` already answers imok before an ensemble member has a leader); 1 when it exited or
# timed out.
zk_wait_ready() {
  local timeout="${1:-120}" start=$SECONDS
  while [ $((SECONDS - start)) -lt "$timeout" ]; do
    if zk_4lw srvr | grep -q '^Zxid:'; then return 0; fi
    kill -0 "$ZK_PID" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# zk_start_ready DIR [HEAP] [TIMEOUT_S]: start + wait, retrying twice when the port we
# picked was taken by someone else in between (the only race of zk_free_port).
zk_start_ready() {
  local dir="$1" heap="${2:-1g}" timeout="${3:-120}"
  for _ in 1 2 3; do
    zk_start "$dir" "$heap"
    if zk_wait_ready "$timeout"; then return 0; fi
    zk_stop
    grep -q "Address already in use" "$dir/zookeeper.log" "$dir/zookeeper.out" 2>/dev/null || return 1
    echo "note: port $ZK_PORT was taken, retrying" >&2
  done
  return 1
}

zk_stop() {
  if [ -n "$ZK_PID" ]; then
    if kill -0 "$ZK_PID" 2>/dev/null; then
      kill "$ZK_PID" 2>/dev/null || true
      for _ in $(seq 1 300); do kill -0 "$ZK_PID" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$ZK_PID" 2>/dev/null && kill -9 "$ZK_PID" 2>/dev/null
    fi
    wait "$ZK_PID" 2>/dev/null || true
    ZK_PID=""
  fi
  return 0
}
