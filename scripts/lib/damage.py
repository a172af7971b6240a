#!/usr/bin/env python3
"""Damaged copies of a ZooKeeper data directory, for zk-damage-matrix.sh.

usage: damage.py list FIXTURE_DATA            -> one JSON case per line (id, group, title, damage)
       damage.py apply FIXTURE_DATA CASE_ID DEST_DATA
                                              -> copies FIXTURE_DATA to DEST_DATA, applies the
                                                 damage, prints the case JSON

Every damage is described by byte-exact, language-neutral parameters (file, offset, bit,
new bytes, garbage pattern) so that a test in another language can make the same copy.
Files are named relative to version-2/. The cases are computed from the fixture itself:
"newest log" = the log with the largest start zxid, "newest snapshot" likewise, "middle
log" = the log at index len//2 of the logs sorted by start zxid, "middle record" = the record
at index count//2 of that log.
"""
import json
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zklog import records  # noqa: E402

GARBAGE = b"keeperkit-garbage\n"   # repeated to the file's original size


def zx(name):
    return int(name.split(".")[1], 16)


def listing(data):
    v2 = os.path.join(data, "version-2")
    names = os.listdir(v2)
    logs = sorted((n for n in names if n.startswith("log.")), key=zx)
    snaps = sorted((n for n in names if n.startswith("snapshot.")), key=zx)
    return v2, logs, snaps


def recs(v2, name):
    return list(records(open(os.path.join(v2, name), "rb").read()))


def cases(data):
    v2, logs, snaps = listing(data)
    newest, middle = logs[-1], logs[len(logs) // 2]
    nrecs, mrecs = recs(v2, newest), recs(v2, middle)
    last = nrecs[-1]
    mid_new = nrecs[len(nrecs) // 2]
    mid_mid = mrecs[len(mrecs) // 2]
    snap = snaps[-1]
    snap_size = os.path.getsize(os.path.join(v2, snap))
    last_zxid = max(r["zxid"] for r in nrecs)
    out = [{"id": "clean", "group": "control", "title": "undamaged copy", "damage": []}]
    for label, cut in (("in its checksum field", last["offset"] + 4),
                       ("in its length field", last["offset"] + 10),
                       ("in the middle of its payload", last["offset"] + 12 + last["length"] // 2),
                       ("just before its 0x42 marker", last["end"] - 1),
                       ("right after its 0x42 marker (complete record, no padding)", last["end"])):
        i = len([c for c in out if c["group"] == "a"]) + 1
        out.append({"id": "a%d-torn-last-record" % i, "group": "a",
                    "title": "newest log %s truncated %s (record zxid %#x at offset %d, %d bytes)"
                             % (newest, label, last["zxid"], last["offset"], last["end"] - last["offset"]),
                    "damage": [{"file": newest, "action": "truncate", "size": cut,
                                "record_zxid": "%#x" % last["zxid"]}]})
    flip_off = mid_mid["offset"] + 12 + mid_mid["length"] // 2
    out.append({"id": "b1-bitflip-middle-log", "group": "b",
                "title": "bit 0 flipped in the payload of the middle record (zxid %#x) of the middle log %s"
                         % (mid_mid["zxid"], middle),
                "damage": [{"file": middle, "action": "flip_bit", "offset": flip_off, "bit": 0,
                            "record_zxid": "%#x" % mid_mid["zxid"]}]})
    flip_off2 = mid_new["offset"] + 12 + mid_new["length"] // 2
    out.append({"id": "b2-bitflip-newest-log", "group": "b",
                "title": "bit 0 flipped in the payload of the middle record (zxid %#x) of the newest log %s "
                         "(a log the server must replay)" % (mid_new["zxid"], newest),
                "damage": [{"file": newest, "action": "flip_bit", "offset": flip_off2, "bit": 0,
                            "record_zxid": "%#x" % mid_new["zxid"]}]})
    out.append({"id": "c1-middle-log-deleted", "group": "c",
                "title": "middle log %s deleted (older than the newest snapshot %s)" % (middle, snap),
                "damage": [{"file": middle, "action": "delete"}]})
    # the log holding the first txn after the newest snapshot, when it is not the newest log
    snapz = zx(snap)
    needed = [n for n in logs if zx(n) <= snapz + 1]
    if needed and needed[-1] != newest:
        out.append({"id": "c2-replay-log-deleted", "group": "c",
                    "title": "log %s deleted: it holds the txns right after the newest snapshot %s, "
                             "so replay must jump from %s to %s" % (needed[-1], snap,
                                                                   needed[-2] if len(needed) > 1 else "nothing", newest),
                    "damage": [{"file": needed[-1], "action": "delete"}]})
    empty_name = "log.%x" % (last_zxid + 1)
    out.append({"id": "d1-empty-newest-log", "group": "d",
                "title": "zero-length %s created (newer than every log)" % empty_name,
                "damage": [{"file": empty_name, "action": "create_empty"}]})
    out.append({"id": "e1-garbage-newest-snapshot", "group": "e",
                "title": "newest snapshot %s overwritten with %r repeated (same size, %d bytes)"
                         % (snap, GARBAGE.decode(), snap_size),
                "damage": [{"file": snap, "action": "garbage", "pattern": GARBAGE.decode(), "size": snap_size}]})
    out.append({"id": "e2-bitflip-newest-snapshot", "group": "e",
                "title": "bit 0 flipped in the middle (offset %d) of the newest snapshot %s; its tail is intact"
                         % (snap_size // 2, snap),
                "damage": [{"file": snap, "action": "flip_bit", "offset": snap_size // 2, "bit": 0}]})
    out.append({"id": "f1-empty-newest-snapshot", "group": "f",
                "title": "newest snapshot %s truncated to 0 bytes" % snap,
                "damage": [{"file": snap, "action": "truncate", "size": 0}]})
    out.append({"id": "g1-huge-length-newest-log", "group": "g",
                "title": "length field of the middle record (zxid %#x, offset %d) of the newest log %s set to "
                         "2^31-1" % (mid_new["zxid"], mid_new["offset"], newest),
                "damage": [{"file": newest, "action": "write", "offset": mid_new["offset"] + 8,
                            "bytes_hex": "7fffffff", "record_zxid": "%#x" % mid_new["zxid"]}]})
    out.append({"id": "g2-huge-length-last-record", "group": "g",
                "title": "length field of the last record (zxid %#x, offset %d) of the newest log %s set to "
                         "2^31-1" % (last["zxid"], last["offset"], newest),
                "damage": [{"file": newest, "action": "write", "offset": last["offset"] + 8,
                            "bytes_hex": "7fffffff", "record_zxid": "%#x" % last["zxid"]}]})
    return out


def apply(dest, case):
    v2 = os.path.join(dest, "version-2")
    for d in case["damage"]:
        p = os.path.join(v2, d["file"])
        a = d["action"]
        if a == "truncate":
            os.truncate(p, d["size"])
        elif a == "flip_bit":
            with open(p, "r+b") as f:
                f.seek(d["offset"])
                b = f.read(1)[0]
                f.seek(d["offset"])
                f.write(bytes([b ^ (1 << d["bit"])]))
        elif a == "write":
            with open(p, "r+b") as f:
                f.seek(d["offset"])
                f.write(bytes.fromhex(d["bytes_hex"]))
        elif a == "delete":
            os.remove(p)
        elif a == "create_empty":
            open(p, "wb").close()
        elif a == "garbage":
            pat = d["pattern"].encode()
            with open(p, "wb") as f:
                f.write((pat * (d["size"] // len(pat) + 1))[:d["size"]])
        else:
            raise SystemExit("unknown action %s" % a)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "list":
        for c in cases(sys.argv[2]):
            print(json.dumps(c))
    elif len(sys.argv) == 5 and sys.argv[1] == "apply":
        src, cid, dest = sys.argv[2:5]
        case = [c for c in cases(src) if c["id"] == cid]
        if not case:
            raise SystemExit("no case %s" % cid)
        if os.path.exists(dest):
            shutil.rmtree(dest)
        shutil.copytree(src, dest)
        apply(dest, case[0])
        print(json.dumps(case[0]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
