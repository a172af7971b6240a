"""The four-letter words of a ZooKeeper-protocol server on 127.0.0.1, for the scripts
(scripts/failover.py, scripts/lib/leader_kill.py; the shell scripts through zk_4lw in
scripts/lib/zkserver.sh, which runs this file: `fourlw.py PORT WORD` prints the answer,
nothing when the server cannot be reached)."""
import socket
import sys


def ask(port, word, timeout=2):
    """The server's whole answer to `word` (text), or None when it cannot be reached."""
    try:
        with socket.create_connection(("127.0.0.1", int(port)), timeout=timeout) as s:
            s.sendall(word.encode())
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
    except OSError:
        return None
    return out.decode("utf-8", "replace")


def field(port, word, prefix):
    """The rest of the first line of the answer to `word` that starts with `prefix`,
    stripped; None when the server cannot be reached or prints no such line."""
    out = ask(port, word)
    if out is None:
        return None
    for line in out.splitlines():
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


if __name__ == "__main__":
    sys.stdout.write(ask(sys.argv[1], sys.argv[2], timeout=5) or "")
