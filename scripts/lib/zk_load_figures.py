#!/usr/bin/env python3
"""Extract ZooKeeper 3.8.0's own load timings from its server log (used by make-1m.sh).

usage: zk_load_figures.py LOG T0 T1 SRVR_TEXT   -> one JSON object on stdout
"""
import datetime
import json
import os
import re
import sys

log, t0, t1, srvr = sys.argv[1:5]
lines = open(log, encoding="utf-8", errors="replace").read().splitlines()


def ts(line):
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def find(pat):
    for line in lines:
        m = re.search(pat, line)
        if m:
            return line, m
    return None, None


res = {"log_lines": {}}
l_read, m = find(r"Reading snapshot (\S+)")
if l_read:
    res["snapshot_file"] = os.path.basename(m.group(1))
    res["log_lines"]["reading"] = l_read[24:]
l_dig, _ = find(r"The digest in the snapshot has digest version")
if l_read and l_dig:
    res["snapshot_read_ms"] = int((ts(l_dig) - ts(l_read)).total_seconds() * 1000)
    res["log_lines"]["snapshot_digest"] = l_dig[24:]
line, m = find(r"(\d+) txns loaded in (\d+) ms")
if line:
    res["txns_replayed"] = int(m.group(1))
    res["txn_replay_ms"] = int(m.group(2))
    res["log_lines"]["txns_loaded"] = line[24:]
line, m = find(r"Snapshot loaded in (\d+) ms, highest zxid is 0x([0-9a-f]+), digest is (-?\d+)")
if line:
    res["load_total_ms"] = int(m.group(1))
    res["highest_zxid"] = "0x" + m.group(2)
    res["digest"] = int(m.group(3))
    res["log_lines"]["snapshot_loaded"] = line[24:]
line, m = find(r"Snapshot taken in (\d+) ms")
if line:
    res["snapshot_taken_ms"] = int(m.group(1))
    res["log_lines"]["snapshot_taken"] = line[24:]
res["jvm_start_to_ready_s"] = round(float(t1) - float(t0), 2)
# the machine may be shared: record how busy it was (1-minute load average)
res["loadavg_1m_after"] = round(os.getloadavg()[0], 2)
for row in srvr.splitlines():
    if row.startswith("Node count:"):
        res["srvr_node_count"] = int(row.split(":")[1])
    if row.startswith("Zxid:"):
        res["srvr_zxid"] = row.split(":")[1].strip()
print(json.dumps(res))
