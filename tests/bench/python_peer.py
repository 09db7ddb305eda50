"""A do-nothing link peer in Python: the floor of ``bench_roundtrip.py``'s HSM row.

It accepts one connection on the UNIX socket given, then for every frame it reads (a link header and
its body) writes one fixed answer, with blocking I/O on one thread, as the backend's connection thread
does, but without decoding or executing anything. What a command costs here is what any Python process
answering on a socket pays on this machine.

    python -m tests.bench.python_peer SOCKET ANSWER_HEX
"""

from __future__ import annotations

import socket
import sys

from pyhsm.protocol import link
from tests.bench.bench_roundtrip import exactly


def main(argv: list[str]) -> int:
    path, answer = argv[0], bytes.fromhex(argv[1])
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    conn, _ = server.accept()
    try:
        while True:
            exactly(conn, link.HEADER.unpack(exactly(conn, link.HEADER.size))[-1])
            conn.sendall(answer)
    except ConnectionError:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
