#!/usr/bin/env bash
# Measures the memory ZooKeeper 3.8 uses to hold a data directory's tree: starts it on a
# copy of DIR/data, waits until it serves, forces a full GC, and records the live heap
# (jcmd GC.heap_info, "used") and the process RSS into DIR/zk-heap.json. The README's
# memory-per-znode comparison with keeperkit uses it.
#
#   scripts/zk-heap.sh DIR        (DIR as made by scripts/make-1m.sh)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=lib/zkserver.sh
. "$here/lib/zkserver.sh"
dir=${1:?usage: $0 DIR (holding data/version-2)}
[ -d "$dir/data/version-2" ] || { echo "error: $dir/data/version-2 not found" >&2; exit 2; }
zk_check_deps
work=$(mktemp -d "${TMPDIR:-/tmp}/zk-heap.XXXXXX")
cleanup() { zk_stop; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/data"
cp -r "$dir/data/version-2" "$work/data/"
zk_init_dir "$work" "$work/data"
zk_start_ready "$work" 6g 600 || { echo "error: ZooKeeper did not start; see $work/zookeeper.log" >&2; exit 1; }
jcmd "$ZK_PID" GC.run >/dev/null
sleep 2
heap=$(jcmd "$ZK_PID" GC.heap_info)
rss_kb=$(ps -o rss= -p "$ZK_PID" | tr -d ' ')
nodes=$(zk_4lw mntr | awk '/zk_znode_count/ {print $2}')
python3 - "$dir/zk-heap.json" "$rss_kb" "${nodes:-0}" <<PY
import json, re, sys
heap = """$heap"""
m = re.search(r"used (\d+)K", heap)
used_kb = int(m.group(1)) if m else None
out = {"zookeeper_version": "3.8.0", "heap_used_after_full_gc_bytes": used_kb * 1024 if used_kb else None,
       "rss_bytes": int(sys.argv[2]) * 1024, "znodes": int(sys.argv[3]), "jcmd_heap_info": heap.strip()}
if used_kb and int(sys.argv[3]):
    out["heap_bytes_per_znode"] = round(used_kb * 1024 / int(sys.argv[3]), 1)
json.dump(out, open(sys.argv[1], "w"), indent=1)
print(json.dumps({k: v for k, v in out.items() if k != "jcmd_heap_info"}))
PY
