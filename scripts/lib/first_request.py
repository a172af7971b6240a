#!/usr/bin/env python3
"""first_request.py PORT T0 [TIMEOUT_S]

Measures when a ZooKeeper-protocol server on 127.0.0.1:PORT first serves a client:
tries, every 10 ms, to connect, open a session and get an answer to `exists /` with
error code 0, and prints the seconds from T0 (a Unix time with a fraction, taken just
before the server was started) to that answer. Exits 1 (printing why) when TIMEOUT_S
(default 600) passes first. Used by scripts/bench-server-1m.sh for the start time.
"""
import socket
import struct
import sys
import time


def frame(body):
    return struct.pack(">i", len(body)) + body


def read_frame(s):
    def exact(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise ConnectionError("closed by the server")
            b += c
        return b

    (n,) = struct.unpack(">i", exact(4))
    if n < 0 or n > 1 << 20:
        raise ValueError("bad frame length %d" % n)
    return exact(n)


def try_once(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly
        s.sendall(frame(struct.pack(">iqiqi16sB", 0, 0, 10000, 0, 16, b"\0" * 16, 0)))
        resp = read_frame(s)
        _, timeout, session = struct.unpack(">iiq", resp[:16])
        if timeout <= 0 or session == 0:
            raise ConnectionError("session refused")
        path = b"/"
        # RequestHeader (xid, type 3 = exists), path, watch
        s.sendall(frame(struct.pack(">iii", 1, 3, len(path)) + path + b"\0"))
        reply = read_frame(s)
        xid, _, err = struct.unpack(">iqi", reply[:16])
        if xid != 1 or err != 0:
            raise ConnectionError("exists / answered xid %d error %d" % (xid, err))
        answered = time.time()
        # closeSession (type -11), so the server has no session left behind
        s.sendall(frame(struct.pack(">ii", 2, -11)))
        try:
            read_frame(s)
        except (OSError, ConnectionError, ValueError):
            pass
        return answered


def main():
    port, t0 = int(sys.argv[1]), float(sys.argv[2])
    limit = float(sys.argv[3]) if len(sys.argv) > 3 else 600.0
    last = "no attempt"
    while time.time() - t0 < limit:
        try:
            answered = try_once(port)
            print("%.3f" % (answered - t0))
            return 0
        except (OSError, ConnectionError, ValueError, struct.error) as e:
            last = str(e) or type(e).__name__
        time.sleep(0.01)
    print("no answer within %.0f s (last: %s)" % (limit, last))
    return 1


if __name__ == "__main__":
    sys.exit(main())
