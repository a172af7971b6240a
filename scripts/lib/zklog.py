#!/usr/bin/env python3
"""List the records of a ZooKeeper txn log (used by zk-damage-matrix.sh).

usage: zklog.py LOGFILE            -> one JSON object per record:
       {"index", "offset", "length", "end", "zxid", "type", "checksum_ok"}
offset = first byte of the record (its checksum field); end = one past its 0x42 marker.
Stops at physical EOF, a zero length or a missing 0x42 marker, like FileTxnLog.
"""
import json
import struct
import sys
import zlib


def records(buf):
    if buf[:4] != b"ZKLG":
        raise SystemExit("not a ZooKeeper txn log (magic %r)" % buf[:4])
    off, i = 16, 0
    while off + 12 <= len(buf):
        crc, n = struct.unpack(">qi", buf[off:off + 12])
        if n <= 0 or off + 12 + n + 1 > len(buf):
            break
        payload = buf[off + 12:off + 12 + n]
        if buf[off + 12 + n] != 0x42:
            break
        zxid, typ = struct.unpack(">q", payload[12:20])[0], struct.unpack(">i", payload[28:32])[0]
        yield {"index": i, "offset": off, "length": n, "end": off + 13 + n, "zxid": zxid,
               "type": typ, "checksum_ok": (zlib.adler32(payload) & 0xffffffff) == crc}
        off += 13 + n
        i += 1


if __name__ == "__main__":
    data = open(sys.argv[1], "rb").read()
    for r in records(data):
        print(json.dumps(r))
