"""``pyhsm.host.sockets``: a server's UNIX socket counts as ready when it listens, not when its file
appears (the file exists from ``bind`` on, and a connection before ``listen`` is refused)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pyhsm.host.sockets import listening, wait_listening

SERVER = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
time.sleep(0.5)          # the file exists; connections are refused until listen
s.listen(1)
time.sleep(30)
"""


def test_a_bound_socket_is_not_listening_until_listen(workdir: Path) -> None:
    path = workdir / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        assert path.exists() and not listening(path)
        with socket.socket(socket.AF_UNIX) as client, pytest.raises(ConnectionRefusedError):
            client.connect(str(path))
        server.listen(1)
        assert listening(path)
    assert not listening(workdir / "other.sock")


def test_wait_listening_returns_once_a_child_listens_and_false_when_it_exits(workdir: Path) -> None:
    path = workdir / "child.sock"
    child = subprocess.Popen([sys.executable, "-c", SERVER, str(path)])
    try:
        assert wait_listening(path, child, 20)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))                 # accepted into the backlog: no refusal
    finally:
        child.kill()
        child.wait()
    assert not wait_listening(path, child, 20)        # the child is gone: no waiting for the timeout
