#!/usr/bin/env python3
"""Summarise one zk-damage-matrix case (reads the files the script left in CASE_DIR).

usage: damage_result.py CASE_DIR BASELINE_LOG|-   -> one JSON object on stdout

CASE_DIR holds: case.json, zk/zookeeper.log, zk.status (started|exited RC|timeout),
zk.srvr, zk.jsonl (+ zk.dump.err), kk.verify.json, kk.verify.rc, kk.verify.err,
kk.dump.jsonl, kk.dump.rc, kk.dump.err.
"""
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[([^\]]*)\] (\w+)\s+(\S+) - (.*)$")


def read(p, default=""):
    try:
        with open(p, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return default


def norm(msg):
    return re.sub(r"0x[0-9a-f]+|\d+|/tmp/\S+", "#", msg)


def log_entries(text):
    """[level, logger, message, [exception lines], thread] per log entry."""
    out = []
    for line in text.splitlines():
        m = TS.match(line)
        if m:
            out.append([m.group(2), m.group(3), m.group(4), [], m.group(1)])
        elif out and line.strip() and not line.lstrip().startswith("at ") and not line.startswith("\t..."):
            out[-1][3].append(line.strip())
    return out


def main():
    case_dir, baseline = sys.argv[1], sys.argv[2]
    case = json.loads(read(os.path.join(case_dir, "case.json")))
    zlog = read(os.path.join(case_dir, "zk", "zookeeper.log"))
    base = set()
    if baseline != "-":
        base = {norm(e[2]) for e in log_entries(read(baseline)) if e[0] in ("WARN", "ERROR")}
    entries = log_entries(zlog)
    status = read(os.path.join(case_dir, "zk.status")).split()
    zk = {"starts": bool(status) and status[0] == "started"}
    if status and status[0] == "exited":
        zk["exit_code"] = int(status[1])
    if status and status[0] == "timeout":
        zk["note"] = "neither served nor exited within the timeout"
    snaps = [re.search(r"Reading snapshot (\S+)", e[2]).group(1) for e in entries
             if e[2].startswith("Reading snapshot")]
    zk["snapshots_tried"] = [os.path.basename(s) for s in snaps]
    for e in entries:
        m = re.match(r"(\d+) txns loaded in", e[2])
        if m:
            zk["txns_replayed"] = int(m.group(1))
        m = re.match(r"Snapshot loaded in \d+ ms, highest zxid is (0x[0-9a-f]+)", e[2])
        if m:
            zk["loaded_zxid"] = m.group(1)
    for line in read(os.path.join(case_dir, "zk.srvr")).splitlines():
        if line.startswith("Zxid:"):
            zk["last_zxid"] = line.split(":", 1)[1].strip()
    zjsonl = os.path.join(case_dir, "zk.jsonl")
    if zk["starts"] and os.path.exists(zjsonl):
        zk["node_count"] = sum(1 for _ in open(zjsonl))
    key = []
    for lvl, logger, msg, exc, thread in entries:
        # loading happens on the main thread; later lines (client connections of this
        # script, our 4lw probes) are noise
        if thread != "main":
            continue
        interesting = lvl in ("WARN", "ERROR") and norm(msg) not in base
        interesting = interesting or re.search(r"partial|CRC|Unreasonable|EOF|Invalid snapshot|"
                                               r"Problem reading|Unable to load|digest mismatch|"
                                               r"not valid|corrupt", msg, re.I)
        if interesting:
            s = "%s %s - %s" % (lvl, logger, msg)
            if exc:
                s += " | " + " | ".join(exc[:2])
            s = s[:300]
            if s not in key:
                key.append(s)
    zk["key_log_lines"] = key[:8]

    kk = {}
    for what in ("verify", "dump"):
        rc = read(os.path.join(case_dir, "kk.%s.rc" % what)).strip()
        kk["%s_exit" % what] = int(rc) if rc else None
    vj = read(os.path.join(case_dir, "kk.verify.json"))
    try:
        v = json.loads(vj)
        kk["verify_ok"] = v.get("ok")
        kk["verify_problems"] = [
            {k: p.get(k) for k in ("severity", "kind", "file", "offset", "zxid_hex", "message")}
            for p in v.get("problems", [])][:6]
    except ValueError:
        kk["verify_output"] = vj[:300] or None
    err = read(os.path.join(case_dir, "kk.verify.err")).strip()
    if err:
        kk["verify_stderr"] = err.splitlines()[:4]
    kjsonl = os.path.join(case_dir, "kk.dump.jsonl")
    if kk.get("dump_exit") in (0, 1) and os.path.exists(kjsonl):
        kk["dump_node_count"] = sum(1 for line in open(kjsonl) if line.strip())
    err = read(os.path.join(case_dir, "kk.dump.err")).strip()
    if err:
        kk["dump_stderr"] = err.splitlines()[:4]
    if zk["starts"] and os.path.exists(zjsonl) and "dump_node_count" in kk:
        r = subprocess.run([sys.executable, os.path.join(HERE, "compare_dumps.py"), "zookeeper", zjsonl,
                            "keeperkit", kjsonl], capture_output=True, text=True)
        kk["dump_equals_zookeeper"] = r.returncode == 0
        if r.returncode != 0:
            kk["first_difference"] = r.stdout.strip().splitlines()[:6]
    out = {"id": case["id"], "group": case["group"], "title": case["title"], "damage": case["damage"],
           "zookeeper": zk, "keeperkit": kk}
    # file names relative to version-2/, no temp paths: the output is committed
    text = json.dumps(out)
    for side in ("zk", "kk"):
        for prefix in (os.path.join(os.path.abspath(case_dir), side, "data", "version-2") + "/",
                       os.path.join(os.path.abspath(case_dir), side, "data") + "/"):
            text = text.replace(prefix, "")
    print(text)


if __name__ == "__main__":
    main()
