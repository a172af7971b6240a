#!/usr/bin/env bash
# diff-zookeeper.sh [--against keeperkit|zookeeper] [--ops N] [--seed S] [--expiries K] [--keep]
#
# Differential test: the same seeded sequence of ZooKeeper requests (scripts/lib/zkdiff.py:
# 8+ sessions, every request type, watches of every kind, multi, ephemerals, sequential
# nodes, ACLs with digest auth, deliberate errors, session close, reconnect with
# setWatches, expiry) runs against Apache ZooKeeper 3.8 and against the server under test
# (`keeperkit serve`, or a second ZooKeeper with --against zookeeper to prove the test
# itself deterministic). Every reply (xid, zxid, error code, data, stat, children, ACL,
# multi results) and every watch event, in the order each session received them, must be
# identical once session ids and times are mapped; so must the final trees: `keeperkit
# dump --json` of both data directories after the servers stopped with sessions open.
#
# Options:
#   --ops N       requests of the workload (default $KEEPERKIT_DIFF_OPS, else 3000; the
#                 full run is 10000+)
#   --seed S      workload seed (default $KEEPERKIT_DIFF_SEED, else 1)
#   --expiries K  session expiries (barriers of ~1-2 s each; default 2)
#   --keep        keep the work dir (run logs, dumps, server logs) and print its path
# Environment: KEEPERKIT = the keeperkit binary (default target/release/keeperkit, built
# when missing).
# Exit 0 identical, 1 different, 2 could not run.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
# shellcheck source=scripts/lib/target.sh
. "$HERE/lib/target.sh"
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

AGAINST=keeperkit OPS=${KEEPERKIT_DIFF_OPS:-3000} SEED=${KEEPERKIT_DIFF_SEED:-1} EXP=2 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --against) AGAINST="$2"; shift 2;;
    --ops) OPS="$2"; shift 2;;
    --seed) SEED="$2"; shift 2;;
    --expiries) EXP="$2"; shift 2;;
    --keep) KEEP=1; shift;;
    -h|--help) usage 0;;
    *) echo "diff-zookeeper: unknown argument $1" >&2; usage 2;;
  esac
done
case "$AGAINST" in keeperkit|zookeeper) ;; *) echo "diff-zookeeper: --against keeperkit|zookeeper" >&2; exit 2;; esac
zk_check_deps || exit 2
if [ ! -x "$KEEPERKIT" ]; then
  (cd "$ROOT" && cargo build --release -q -p keeperkit-tools) || exit 2
fi

WORK=$(mktemp -d /tmp/diff-zookeeper.XXXXXX)
cleanup() {
  local rc=$?
  tgt_stop
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then echo "diff-zookeeper: work dir kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# one run: KIND LABEL
one_run() {
  local kind="$1" label="$2" t0=$SECONDS
  tgt_init "$kind" "$WORK/$label"
  tgt_start || { echo "diff-zookeeper: $label: the server did not start" >&2; return 2; }
  # the driver stops the server (SIGTERM) at the end, with sessions still open
  python3 "$HERE/lib/zkdiff.py" run --port "$TGT_PORT" --pid "$TGT_PID" --seed "$SEED" --ops "$OPS" \
    --expiries "$EXP" --out "$WORK/$label.run.json" | sed "s/^/$label: /"
  wait "$TGT_PID" 2>/dev/null || true
  TGT_PID=""
  if ! "$KEEPERKIT" dump "$WORK/$label/data" --json > "$WORK/$label.dump.jsonl" 2> "$WORK/$label.dump.err"; then
    # ZooKeeper 3.8 computes a txn's digest from its own idea of the new node and applies
    # the txn differently when the create opcode and the mode disagree (create/create2
    # with the container mode make a persistent node, createContainer with another mode
    # a container): it logs "Digests are not matching" and carries on, and its log keeps
    # that digest. Such mismatches (and only those, as many as ZooKeeper logged) are
    # accepted on ZooKeeper's side; keeperkit's own directory must dump cleanly.
    local ours theirs
    ours=$(grep -c "digest mismatch after zxid" "$WORK/$label.dump.err" || true)
    theirs=$(grep -a -c "Digests are not matching" "$WORK/$label/zookeeper.log" 2>/dev/null || true)
    if [ "$kind" != zookeeper ] || [ "$(grep -vc "digest mismatch after zxid" "$WORK/$label.dump.err")" != 0 ] \
       || [ "${ours:-0}" -gt "${theirs:-0}" ]; then
      echo "diff-zookeeper: $label: keeperkit dump of its data directory failed:" >&2
      head -5 "$WORK/$label.dump.err" >&2
      return 1
    fi
    echo "diff-zookeeper: $label: $ours digest mismatches in ZooKeeper's log, as many as it logged itself"
  fi
  python3 "$HERE/lib/zkdiff.py" normtree "$WORK/$label.run.json" "$WORK/$label.dump.jsonl" "$WORK/$label.tree.jsonl" \
    | sed "s/^/$label: /"
  echo "diff-zookeeper: $label: $(wc -l < "$WORK/$label.tree.jsonl") nodes in the final tree [$((SECONDS - t0)) s]"
}

A=zookeeper B=$AGAINST
[ "$B" = zookeeper ] && B=zookeeper2
echo "diff-zookeeper: seed $SEED, $OPS ops, $EXP expiries: ZooKeeper 3.8 vs $B"
one_run zookeeper "$A" || exit $?
if [ "$AGAINST" = zookeeper ]; then one_run zookeeper "$B" || exit $?; else one_run keeperkit "$B" || exit $?; fi
set +e
python3 "$HERE/lib/zkdiff.py" compare "$WORK/$A.run.json" "$WORK/$B.run.json" --labels "$A" "$B" \
  --trees "$WORK/$A.tree.jsonl" "$WORK/$B.tree.jsonl"
rc=$?
set -e
[ "$rc" = 0 ] && echo "diff-zookeeper: OK (seed $SEED, $OPS ops)"
exit "$rc"
