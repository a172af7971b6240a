#!/usr/bin/env bash
# zkcli_suite.sh PORT|HOSTS [--record]
#
# zkCli.sh (ZooKeeper 3.8's own shell) scripted against a ZooKeeper-protocol server on
# 127.0.0.1:PORT, or a cluster (HOSTS: a connect string, `zkCli.sh -server
# HOST:PORT,HOST:PORT,...`), that holds nothing but /zookeeper (a fresh server: the zxids
# in the output count from its first session; a ZooKeeper ensemble's carry the leader's
# epoch in their high 32 bits, which is taken out: 0x100000005 compares as 0x5). Feeds zkcli_script.txt on stdin (every znode
# command of the shell: create with each mode, get/set/stat with versions, ls -s/-R,
# getEphemerals, getAllChildrenNumber, addWatch, removewatches, sync, ACLs with addauth,
# whoami, quotas, deleteall, errors) and compares what it prints with
# zkcli_expected.txt, recorded from Apache ZooKeeper 3.8.0 with --record.
#
# Normalised: times, session ids (ephemeralOwner), SLF4J and connection banners. Watch
# events are printed by the client's event thread, so where they fall between command
# outputs is not deterministic: they are taken out and compared as their own list.
# Exit 0 same output, 1 different (a unified diff is printed).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVER="$1" RECORD="${2:-}"
[[ "$SERVER" == *:* ]] || SERVER="127.0.0.1:$SERVER"
ZKCLI=/usr/share/zookeeper/bin/zkCli.sh
[ -x "$ZKCLI" ] || { echo "zkcli: $ZKCLI missing (apt-get install -y zookeeper)" >&2; exit 2; }
OUT=$(mktemp -d /tmp/zkcli.XXXXXX)
trap 'rm -rf "$OUT"' EXIT

timeout 120 "$ZKCLI" -server "$SERVER" < "$HERE/zkcli_script.txt" > "$OUT/raw" 2>&1 || true
python3 - "$OUT/raw" > "$OUT/got" <<'PY'
import re, sys
lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
out, events, started = [], [], False
for l in lines:
    if not started:
        started = l.startswith("WatchedEvent state:SyncConnected type:None")
        continue
    if l.startswith("SLF4J:") or l == "WATCHER::" or not l.strip():
        continue
    # deleteall's failure message is a race in ZooKeeper 3.8's own client
    # (ZKUtil.deleteInBatch releases its semaphore before it records the failed multi),
    # printed or not from run to run against ZooKeeper itself; the `ls` after it shows
    # what deleteall left.
    if l == "Failed to delete some node(s) in the subtree!":
        continue
    if l.startswith("WatchedEvent "):
        events.append(l)
        continue
    l = re.sub(r"^([cm]time = ).*", r"\1TIME", l)
    l = re.sub(r"^(ephemeralOwner = )0x[0-9a-f]{6,}$", r"\1SESSION", l)
    # an ensemble's zxids: epoch << 32 | counter
    l = re.sub(r"^([cmp]Zxid = )0x([0-9a-f]+)$", lambda m: m.group(1) + hex(int(m.group(2), 16) & 0xFFFFFFFF), l)
    out.append(l)
if not started:
    out.append("(never connected)")
print("\n".join(out))
print("--- watch events, in the order the client received them")
print("\n".join(events))
PY
if [ "$RECORD" = --record ]; then
  cp "$OUT/got" "$HERE/zkcli_expected.txt"
  echo "zkcli: recorded $(wc -l < "$HERE/zkcli_expected.txt") lines to zkcli_expected.txt"
  exit 0
fi
if diff -u "$HERE/zkcli_expected.txt" "$OUT/got" > "$OUT/diff"; then
  echo "zkcli: ok: $(grep -c . "$HERE/zkcli_script.txt") commands, output identical to ZooKeeper 3.8's"
else
  echo "zkcli: FAILED: the output differs from ZooKeeper 3.8's (- ZooKeeper, + this server):"
  head -60 "$OUT/diff"
  exit 1
fi
