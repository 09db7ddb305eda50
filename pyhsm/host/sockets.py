"""Waiting for a child process's UNIX socket (QEMU's QMP, swtpm's channels) to accept connections.

A socket's file appears at ``bind``, a moment before ``listen``: a client that connects as soon as
the file exists is refused if the server was preempted in between, which a loaded machine does.
``/proc/net/unix`` says when the socket listens.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

_SO_ACCEPTCON = 0x10000       # /proc/net/unix's flag of a listening socket
POLL_S = 0.02


def listening(path: Path) -> bool:
    """Whether a UNIX stream socket bound to ``path`` (as the server named it) accepts connections."""
    name = str(path)
    with open("/proc/net/unix") as table:
        next(table)                                   # the header
        for line in table:
            fields = line.split()
            if len(fields) == 8 and fields[7] == name and int(fields[3], 16) & _SO_ACCEPTCON:
                return True
    return False


def wait_listening(path: Path, process: subprocess.Popen, timeout: float) -> bool:
    """Wait until ``path`` listens; False if ``process`` exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not listening(path):
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True
