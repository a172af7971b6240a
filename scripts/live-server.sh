#!/usr/bin/env bash
# live-server.sh [--target T] [--suites LIST] [--allow-fail LIST] [--diff-ops N] [--keep]
#
# Real ZooKeeper clients against a ZooKeeper-protocol server: Apache ZooKeeper 3.8 (the
# Debian package; a pass there validates the suite) and `keeperkit serve`, each alone
# (targets zookeeper, keeperkit) and as a three-member cluster on 127.0.0.1 (targets
# zookeeper3: a ZooKeeper 3.8 ensemble, the oracle; keeperkit3: three `keeperkit serve
# --id N --peers ...` replicas), same settings for all (scripts/lib/target.sh). On a
# single server every suite gets a fresh server. On a cluster the clients get the
# three-host connect string and one cluster serves every suite in turn (a fresh one
# costs 15-30 s), in the order zkcli, fourlw, kazoo, java, bench, chdb (zkcli wants an
# empty tree, fourlw no session left open by another suite); a fresh one replaces it
# when a member does not serve.
#
#   kazoo  scripts/lib/clients/kazoo_suite.py: every kazoo operation, watch types,
#          recipes (Lock, ReadLock/WriteLock, Semaphore, Election, Barrier,
#          DoubleBarrier, Counter, Queue, LockingQueue, Party, TreeCache). On a cluster
#          each client picks its member, and then a failover phase, scripts/failover.py
#          twice: a client writing without pause is connected to the leader, which is
#          SIGKILLed under it (the member is started again once the client went on),
#          then to a follower, SIGKILLed too; each time the session, its ephemeral and
#          every acknowledged write survive on every surviving member
#   zkcli  scripts/lib/clients/zkcli_suite.sh: zkCli.sh scripted (`-server` the connect
#          string), output compared with ZooKeeper 3.8's
#   java   scripts/lib/clients/JavaClients.java, compiled here against /usr/share/java:
#          the ZooKeeper Java client (create modes, persistent/recursive watches, multi,
#          multiRead, whoAmI, ...) and Curator (LeaderLatch, InterProcessMutex,
#          CuratorCache, DistributedAtomicLong), given the connect string
#   chdb   scripts/lib/clients/chdb_suite.py: ClickHouse's own client (chdb, one <node>
#          per member) with a KeeperMap and a ReplicatedMergeTree table, the server
#          restarted twice in between (same data directory, same port), nothing lost. On
#          a cluster the first restart is a rolling one (each member in turn, the leader
#          last, the next once the previous one serves again in a quorum), the second
#          stops every member and starts them again
#   fourlw scripts/lib/clients/fourlw_suite.py: the four-letter words cons, dump and envi
#          with two kazoo sessions, line by line in ZooKeeper 3.8's shape with the values
#          a test can know (sessions, last operations, timeouts, ephemerals, expiry
#          dates, OS and user). On a cluster once per member, the sessions on that
#          member (a follower's dump lists the sessions as ZooKeeper's learners do)
#   migrate scripts/live-migrate.sh (under the keeperkit target; the zookeeper target has
#          nothing to add): a ZooKeeper directory imported by `keeperkit serve
#          --import`, and keeperkit's directory converted `--to zookeeper`, each served
#          by both servers with the same tree. Not on a cluster (n/a): --import starts
#          one server, `convert` takes one directory
#   diff   scripts/diff-zookeeper.sh: the differential test, ZooKeeper 3.8 against the
#          target (against ZooKeeper itself: proves the test deterministic). Not on a
#          cluster (n/a): it compares every reply's zxid and the final data directories
#          of two single servers; an ensemble's zxids carry its epoch, and which member a
#          session is on changes when its watches and expiries are seen
#   bench  `keeperkit bench server`, 2 s of every op kind from 4 clients: no error answer,
#          every op answered (the load generator against a real server; on a cluster its
#          clients spread over the members)
#
# Options:
#   --target T       zookeeper, keeperkit, zookeeper3, keeperkit3, a comma-separated list
#                    of them, both (= zookeeper,keeperkit; the default), clusters
#                    (= zookeeper3,keeperkit3) or all (the four)
#   --suites LIST    comma-separated (default kazoo,zkcli,java,chdb,fourlw,migrate,diff,
#                    bench)
#   --allow-fail L   comma-separated TARGET:SUITE whose failure is reported as a known
#                    failure and does not fail the script (it still runs)
#   --diff-ops N     operations of the differential run (default $KEEPERKIT_DIFF_OPS or 2000)
#   --keep           keep the work dir (server logs, suite outputs)
# Environment: KEEPERKIT = the keeperkit binary (default target/release/keeperkit, built
# when missing); KEEPERKIT_PORT_RANGE=LO-HI limits the ports; KK_SECONDS = how long the
# failover phase writes after each kill (default 5).
# Prints one line per target and suite (with its time) and a table; exit 0 when every
# run that is not allowed to fail passed (n/a: the suite does not apply to the target).
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
  clusters) TARGETS="zookeeper3 keeperkit3";;
  all) TARGETS="zookeeper keeperkit zookeeper3 keeperkit3";;
  *) TARGETS="${TARGETS//,/ }";;
esac
for kind in $TARGETS; do
  case "$kind" in
    zookeeper|keeperkit|zookeeper3|keeperkit3) ;;
    *) echo "live-server: --target zookeeper|keeperkit|zookeeper3|keeperkit3|both|clusters|all or a list" >&2; exit 2;;
  esac
done
IFS=, read -r -a SUITE_LIST <<< "$SUITES"
for s in "${SUITE_LIST[@]}"; do
  case "$s" in kazoo|zkcli|java|chdb|fourlw|migrate|diff|bench) ;; *) echo "live-server: unknown suite $s" >&2; exit 2;; esac
done

zk_check_deps || exit 2
if { [[ " $TARGETS " == *" keeperkit"* ]] || [[ ",$SUITES," == *,bench,* ]]; } && [ ! -x "$KEEPERKIT" ]; then
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

NA=99   # run_suite's answer for a suite that does not apply to the target

# run_suite TARGET SUITE LOG: 0 pass, $NA does not apply, other non-zero fail
run_suite() {
  local kind="$1" suite="$2" dir="$WORK/$1-$2" cluster=0
  case "$kind" in *3) cluster=1;; esac
  if [ "$cluster" = 1 ]; then
    case "$suite" in
      migrate)
        echo "migrate: does not apply to a cluster: \`serve --import\` starts one server (it conflicts"
        echo "with --id) and \`convert\` works on one directory; a replica's directory is a native one,"
        echo "whose conversions the single-server run checks"
        return $NA;;
      diff)
        echo "diff: does not apply to a cluster: it compares every reply's zxid and the final data"
        echo "directories of two single servers, while an ensemble's zxids carry its epoch and a"
        echo "cluster's sessions, expiries and watches depend on which member each session is on"
        return $NA;;
    esac
  fi
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
  mkdir -p "$dir"
  if [ "$cluster" = 1 ]; then
    cluster_up "$kind" || { echo "the cluster did not start"; return 1; }
  else
    tgt_init "$kind" "$dir" || return 1
    tgt_start || { echo "the server did not start"; return 1; }
  fi
  local rc=0 t0=$SECONDS
  case "$suite" in
    kazoo)
      timeout 300 python3 "$HERE/lib/clients/kazoo_suite.py" --hosts "$TGT_HOSTS" 2>"$dir/stderr" || rc=$?
      if [ "$rc" = 0 ] && [ "$cluster" = 1 ]; then
        echo "kazoo: sections [$((SECONDS - t0)) s]; failover:"
        failover "$dir" || rc=$?
      fi;;
    zkcli) timeout 300 "$HERE/lib/clients/zkcli_suite.sh" "$TGT_HOSTS" || rc=$?;;
    fourlw)
      # per member: both sessions and the asking connection on the member asked
      local n
      for n in "${!TGT_PORTS[@]}"; do
        [ "$cluster" = 1 ] && echo "fourlw: member $((n + 1)) ($(tgt_4lw srvr $((n + 1)) | sed -n 's/^Mode: //p'))"
        timeout 120 python3 "$HERE/lib/clients/fourlw_suite.py" --port "${TGT_PORTS[n]}" || { rc=$?; break; }
      done;;
    java) timeout 300 java -cp "$WORK/java:$JAVA_CP" JavaClients "$TGT_HOSTS" 2>"$dir/stderr" || rc=$?;;
    bench)
      timeout 120 "$KEEPERKIT" bench server --connect "$TGT_HOSTS" --clients 4 --duration 2 \
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
          if [ "$cluster" = 1 ] && [ "$phase" = 2 ]; then
            rolling_restart || { rc=1; break; }
          elif [ "$cluster" = 1 ]; then
            # the whole cluster down at once and started again
            local t1=$SECONDS
            tgt_stop
            tgt_start || { echo "the cluster did not start again"; rc=1; break; }
            echo "cluster restart: every member stopped, then started: serving again in $((SECONDS - t1)) s"
          else
            # a restart on the same data directory and port (ClickHouse reconnects)
            tgt_stop
            tgt_start "$port" || { echo "the server did not restart"; rc=1; break; }
          fi
        fi
        timeout 300 python3 "$HERE/lib/clients/chdb_suite.py" --hosts "$TGT_HOSTS" --dir "$dir/chdb" --phase "$phase" \
          2>"$dir/stderr.$phase" || { rc=$?; break; }
      done;;
  esac
  [ "$cluster" = 1 ] || tgt_stop
  if [ "$rc" != 0 ] && [ "$kind" = keeperkit ] && [ -f "$dir/keeperkit.log" ]; then
    echo "keeperkit serve log (last 5 lines):"
    tail -5 "$dir/keeperkit.log"
  fi
  if [ "$rc" != 0 ] && [ "$kind" = keeperkit3 ]; then
    for n in 1 2 3; do
      echo "member $n's log (last 5 lines):"
      tail -5 "$WORK/$kind/n$n/keeperkit.log"
    done
  fi
  return "$rc"
}

# cluster_up KIND: the cluster of KIND serving with every member: the one that runs, or
# (none yet, another kind's, or one with a member that does not serve) a fresh one in
# $WORK/KIND.
cluster_up() {
  local kind="$1" n ok=1
  if [ "$TGT_KIND" = "$kind" ]; then
    for n in 1 2 3; do tgt_node_serves "$n" || ok=0; done
    [ "$ok" = 1 ] && return 0
    echo "the cluster does not serve with every member: a fresh one"
  fi
  tgt_stop
  rm -rf "${WORK:?}/$kind"
  local t0=$SECONDS
  tgt_init "$kind" "$WORK/$kind" || return 1
  tgt_start || return 1
  echo "cluster: $kind started on $TGT_HOSTS in $((SECONDS - t0)) s"
}

# rolling_restart: every member of the cluster in turn, the leader last, stopped
# (SIGTERM) and started again on its directory and ports; the next one only once it
# serves again (in a working quorum), as an operator does it.
rolling_restart() {
  local leader n order=()
  leader=$(tgt_leader) || { echo "rolling restart: no member leads"; return 1; }
  for n in 1 2 3; do [ "$n" = "$leader" ] || order+=("$n"); done
  order+=("$leader")
  for n in "${order[@]}"; do
    local t0=$SECONDS
    tgt_node_stop "$n"
    tgt_node_start "$n" || { echo "rolling restart: member $n did not serve again"; return 1; }
    tgt_wait_nodes 60 1 2 3 || { echo "rolling restart: the cluster did not serve again after member $n"; return 1; }
    echo "rolling restart: member $n$([ "$n" = "$leader" ] && echo " (the leader)") back in $((SECONDS - t0)) s"
  done
}

# failover DIR: scripts/failover.py twice on the running cluster: the client connected to
# the leader, which is SIGKILLed under it; that member started again; then the client
# connected to a follower, SIGKILLed under it.
failover() {
  local dir="$1" to n pids
  for to in leader follower; do
    pids=$(IFS=,; echo "${TGT_PIDS[*]}")
    local before=("${TGT_PIDS[@]}")
    KK_SECONDS=${KK_SECONDS:-5} KK_CLIENT_PORTS=$(IFS=,; echo "${TGT_PORTS[*]}") KK_PIDS="$pids" \
      timeout 120 python3 "$HERE/failover.py" --kill connected --connect-to "$to" 2>"$dir/failover-$to.stderr" || return 1
    for n in 1 2 3; do
      if ! kill -0 "${before[n-1]}" 2>/dev/null; then
        tgt_node_stop "$n"
        tgt_node_start "$n" || { echo "failover: member $n did not serve again after its kill"; return 1; }
        tgt_wait_nodes 60 1 2 3 || return 1
      fi
    done
  done
}

allowed() { [[ ",$ALLOW," == *",$1:$2,"* ]]; }

START=$SECONDS
declare -A RESULT
BAD=0
# The order of the suites on a cluster: one cluster serves them all (a fresh one takes
# 15-30 s), zkcli first (it wants an empty tree), fourlw before anything leaves sessions
# open, chdb last (it leaves ClickHouse's sessions open until they expire).
CLUSTER_ORDER=(zkcli fourlw kazoo java bench migrate diff chdb)
for kind in $TARGETS; do
  order=("${SUITE_LIST[@]}")
  if [[ "$kind" == *3 ]]; then
    order=()
    for s in "${CLUSTER_ORDER[@]}"; do [[ ",$SUITES," == *",$s,"* ]] && order+=("$s"); done
  fi
  for suite in "${order[@]}"; do
    t0=$SECONDS
    set +e
    run_suite "$kind" "$suite" > "$WORK/$kind-$suite.out" 2>&1
    rc=$?
    set -e
    # (bash's own notice of a member killed on purpose is left out)
    sed -E -e '/: line [0-9]+: +[0-9]+ Killed +/d' -e "s/^/  [$kind $suite] /" "$WORK/$kind-$suite.out"
    if [ "$rc" = 0 ]; then
      RESULT[$kind:$suite]="pass"
    elif [ "$rc" = "$NA" ]; then
      RESULT[$kind:$suite]="n/a"
    elif allowed "$kind" "$suite"; then
      RESULT[$kind:$suite]="FAIL (known, allowed)"
    else
      RESULT[$kind:$suite]="FAIL"
      BAD=$((BAD + 1))
    fi
    echo "live-server: $kind $suite: ${RESULT[$kind:$suite]} [$((SECONDS - t0)) s]"
  done
  tgt_stop
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
