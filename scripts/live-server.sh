#!/usr/bin/env bash
# live-server.sh [--target zookeeper|keeperkit|both] [--suites LIST] [--allow-fail LIST]
#                [--diff-ops N] [--keep]
#
# Real ZooKeeper clients against a ZooKeeper-protocol server: Apache ZooKeeper 3.8 (the
# Debian package; a pass there validates the suite) and `keeperkit serve`. Every suite
# gets a fresh server (same settings for both: scripts/lib/target.sh):
#
#   kazoo  scripts/lib/clients/kazoo_suite.py: every kazoo operation, watch types,
#          recipes (Lock, ReadLock/WriteLock, Semaphore, Election, Barrier,
#          DoubleBarrier, Counter, Queue, LockingQueue, Party, TreeCache)
#   zkcli  scripts/lib/clients/zkcli_suite.sh: zkCli.sh scripted, output compared with
#          ZooKeeper 3.8's
#   java   scripts/lib/clients/JavaClients.java, compiled here against /usr/share/java:
#          the ZooKeeper Java client (create modes, persistent/recursive watches, multi,
#          multiRead, whoAmI, ...) and Curator (LeaderLatch, InterProcessMutex,
#          CuratorCache, DistributedAtomicLong)
#   chdb   scripts/lib/clients/chdb_suite.py: ClickHouse's own client (chdb) with a
#          KeeperMap and a ReplicatedMergeTree table, the server restarted twice in
#          between (same data directory, same port), nothing lost
#   fourlw scripts/lib/clients/fourlw_suite.py: the four-letter words cons, dump and envi
#          with two kazoo sessions, line by line in ZooKeeper 3.8's shape with the values
#          a test can know (sessions, last operations, timeouts, ephemerals, expiry
#          dates, OS and user)
#   migrate scripts/live-migrate.sh (under the keeperkit target; the zookeeper target has
#          nothing to add): a ZooKeeper directory imported by `keeperkit serve
#          --import`, and keeperkit's directory converted `--to zookeeper`, each served
#          by both servers with the same tree
#   diff   scripts/diff-zookeeper.sh: the differential test, ZooKeeper 3.8 against the
#          target (against ZooKeeper itself: proves the test deterministic)
#   bench  `keeperkit bench server`, 2 s of every op kind from 4 clients: no error answer,
#          every op answered (the load generator against a real server)
#
# Options:
#   --target T       zookeeper, keeperkit or both (default both)
#   --suites LIST    comma-separated (default kazoo,zkcli,java,chdb,fourlw,migrate,diff,
#                    bench)
#   --allow-fail L   comma-separated TARGET:SUITE whose failure is reported as a known
#                    failure and does not fail the script (it still runs)
#   --diff-ops N     operations of the differential run (default $KEEPERKIT_DIFF_OPS or 2000)
#   --keep           keep the work dir (server logs, suite outputs)
# Environment: KEEPERKIT = the keeperkit binary (default target/release/keeperkit, built
# when missing).
# Prints one line per target and suite and a table; exit 0 when every run that is not
# allowed to fail passed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib/target.sh
. "$HERE/lib/target.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

TARGETS=both SUITES=kazoo,zkcli,java,chdb,fourlw,migrate,diff,bench ALLOW="" DIFF_OPS=${KEEPERKIT_DIFF_OPS:-2000} KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --target) TARGETS="$2"; shift 2;;
    --suites) SUITES="$2"; shift 2;;
    --allow-fail) ALLOW="$2"; shift 2;;
    --diff-ops) DIFF_OPS="$2"; shift 2;;
    --keep) KEEP=1; shift;;
    -h|--help) usage 0;;
    *) echo "live-server: unknown argument $1" >&2; usage 2;;
  esac
done
case "$TARGETS" in
  both) TARGETS="zookeeper keeperkit";;
  zookeeper|keeperkit) ;;
  *) echo "live-server: --target zookeeper|keeperkit|both" >&2; exit 2;;
esac
IFS=, read -r -a SUITE_LIST <<< "$SUITES"
for s in "${SUITE_LIST[@]}"; do
  case "$s" in kazoo|zkcli|java|chdb|fourlw|migrate|diff|bench) ;; *) echo "live-server: unknown suite $s" >&2; exit 2;; esac
done

zk_check_deps || exit 2
if { [[ " $TARGETS " == *" keeperkit "* ]] || [[ ",$SUITES," == *,bench,* ]]; } && [ ! -x "$KEEPERKIT" ]; then
  echo "live-server: cargo build --release -p keeperkit-tools"
  (cd "$ROOT" && cargo build --release -q -p keeperkit-tools) || exit 2
fi

WORK=$(mktemp -d /tmp/live-server.XXXXXX)
cleanup() {
  local rc=$?
  tgt_stop
  if [ "$KEEP" = 1 ]; then echo "live-server: work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

JAVA_CP=/usr/share/java/zookeeper.jar:/usr/share/java/curator-client.jar:/usr/share/java/curator-framework.jar:/usr/share/java/curator-recipes.jar:/usr/share/java/slf4j-nop.jar
java_compile() {
  [ -d "$WORK/java" ] && return 0
  local j
  for j in ${JAVA_CP//:/ }; do
    [ -f "$j" ] || { echo "missing $j (apt-get install -y libzookeeper-java libcurator-framework-java libcurator-recipes-java libslf4j-java)"; return 1; }
  done
  mkdir -p "$WORK/java"
  javac -d "$WORK/java" -cp "$JAVA_CP" "$HERE/lib/clients/JavaClients.java"
}

# run_suite TARGET SUITE LOG: 0 pass, non-zero fail
run_suite() {
  local kind="$1" suite="$2" dir="$WORK/$1-$2"
  case "$suite" in
    diff)
      local against=keeperkit
      [ "$kind" = zookeeper ] && against=zookeeper
      timeout 900 "$HERE/diff-zookeeper.sh" --against "$against" --ops "$DIFF_OPS"
      return;;
    migrate)
      if [ "$kind" = zookeeper ]; then
        echo "migrate: both servers take part in the keeperkit target's run"; return 0
      fi
      timeout 300 "$HERE/live-migrate.sh"
      return;;
    java) java_compile || return 1;;
    chdb) python3 -c 'import chdb' 2>/dev/null || { echo "python chdb missing (pip install chdb)"; return 1; };;
  esac
  tgt_init "$kind" "$dir" || return 1
  tgt_start || { echo "the server did not start"; return 1; }
  local rc=0
  case "$suite" in
    kazoo) timeout 300 python3 "$HERE/lib/clients/kazoo_suite.py" --port "$TGT_PORT" 2>"$dir/stderr" || rc=$?;;
    zkcli) timeout 300 "$HERE/lib/clients/zkcli_suite.sh" "$TGT_PORT" || rc=$?;;
    fourlw) timeout 120 python3 "$HERE/lib/clients/fourlw_suite.py" --port "$TGT_PORT" || rc=$?;;
    java) timeout 300 java -cp "$WORK/java:$JAVA_CP" JavaClients "127.0.0.1:$TGT_PORT" 2>"$dir/stderr" || rc=$?;;
    bench)
      timeout 120 "$KEEPERKIT" bench server --connect "127.0.0.1:$TGT_PORT" --clients 4 --duration 2 \
        --mix create=2,delete=1,set=1,get=1,exists=1,list=1 --nodes 200 --value-size 512 --json \
        > "$dir/bench.json" || rc=$?
      if [ "$rc" = 0 ]; then
        python3 - "$dir/bench.json" <<'PY' || rc=$?
import json, sys
r = json.load(open(sys.argv[1]))
ops = {o["op"]: o for o in r["ops"]}
print("bench: %.0f ops/s, %d errors; %s" % (r["ops_per_s"], r["errors"],
      ", ".join("%s %d" % (k, o["ok"]) for k, o in ops.items())))
bad = r["errors"] or r["pool_created"] != 200 or sorted(ops) != sorted(
    ["create", "delete", "set", "get", "exists", "list"]) or any(o["ok"] == 0 for o in ops.values())
sys.exit(1 if bad else 0)
PY
      fi;;
    chdb)
      local port=$TGT_PORT phase
      for phase in 1 2 3; do
        if [ "$phase" != 1 ]; then
          # a restart on the same data directory and port (ClickHouse reconnects)
          tgt_stop
          tgt_start "$port" || { echo "the server did not restart"; rc=1; break; }
        fi
        timeout 300 python3 "$HERE/lib/clients/chdb_suite.py" --port "$port" --dir "$dir/chdb" --phase "$phase" \
          2>"$dir/stderr.$phase" || { rc=$?; break; }
      done;;
  esac
  tgt_stop
  if [ "$rc" != 0 ] && [ "$kind" = keeperkit ] && [ -f "$dir/keeperkit.log" ]; then
    echo "keeperkit serve log (last 5 lines):"
    tail -5 "$dir/keeperkit.log"
  fi
  return "$rc"
}

allowed() { [[ ",$ALLOW," == *",$1:$2,"* ]]; }

START=$SECONDS
declare -A RESULT
BAD=0
for kind in $TARGETS; do
  for suite in "${SUITE_LIST[@]}"; do
    t0=$SECONDS
    set +e
    run_suite "$kind" "$suite" > "$WORK/$kind-$suite.out" 2>&1
    rc=$?
    set -e
    sed "s/^/  [$kind $suite] /" "$WORK/$kind-$suite.out"
    if [ "$rc" = 0 ]; then
      RESULT[$kind:$suite]="pass"
    elif allowed "$kind" "$suite"; then
      RESULT[$kind:$suite]="FAIL (known, allowed)"
    else
      RESULT[$kind:$suite]="FAIL"
      BAD=$((BAD + 1))
    fi
    echo "live-server: $kind $suite: ${RESULT[$kind:$suite]} [$((SECONDS - t0)) s]"
  done
done

echo
printf 'live-server: %-8s' suite
for kind in $TARGETS; do printf ' %-24s' "$kind"; done
echo
for suite in "${SUITE_LIST[@]}"; do
  printf 'live-server: %-8s' "$suite"
  for kind in $TARGETS; do printf ' %-24s' "${RESULT[$kind:$suite]}"; done
  echo
done
echo "live-server: $((SECONDS - START)) s; $BAD failure(s) that count"
[ "$BAD" = 0 ]
