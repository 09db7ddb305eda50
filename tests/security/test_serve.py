"""``pyhsm serve`` as a process (docs/security.md): private files, refusals of unsafe set-ups with a
one-line reason, one backend per state directory, and memory that a flooding peer cannot grow."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import HsmClient
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.host.backend import BackendProcess
from pyhsm.protocol import link
from pyhsm.protocol.ddi import envelope
from pyhsm.protocol.ddi.optable import BY_NAME
from tests.backend.ddi.ddi_helpers import APP_ID, BK3, PIN

PYHSM = [sys.executable, "-m", "pyhsm.cli"]
FLOOD_FRAMES = 200_000
RSS_BUDGET_MB = 50


def serve(tmp_path: Path, state: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*PYHSM, "serve", "--socket", str(tmp_path / "run" / "hsm.sock"), "--state", str(state)],
                          capture_output=True, text=True, timeout=60)


def test_state_and_socket_are_private(tmp_path: Path, firmware_dir: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    sock = tmp_path / "run" / "hsm.sock"
    with BackendProcess(sock, state, tmp_path / "backend.log", ("--firmware", str(firmware_dir))):
        client = HsmClient(SocketTransport(sock, serial="SN-MODES"))
        client.establish_credential(APP_ID, PIN, client.init_bk3(BK3), ec.generate_private_key(ec.SECP384R1()))
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    files = list(state.rglob("*"))
    assert any(p.name == "partition.state" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


def test_a_state_directory_others_can_write_is_refused(tmp_path: Path, reliability) -> None:
    state = tmp_path / "shared-state"
    state.mkdir()
    os.chmod(state, 0o777)
    result = serve(tmp_path, state)
    assert result.returncode == 2
    assert "writable by others" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    reliability.record("unsafe set-up", "state directory writable by others", 1, "refused with a one-line reason")


def test_a_second_backend_on_the_same_state_is_refused(tmp_path: Path, firmware_dir: Path) -> None:
    state = tmp_path / "state"
    with BackendProcess(tmp_path / "a" / "hsm.sock", state, tmp_path / "a.log", ("--firmware", str(firmware_dir))):
        result = serve(tmp_path, state)
    assert result.returncode == 2 and "in use by another pyhsm serve" in result.stderr


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def flood_frame() -> bytes:
    """An EccSign request: work the link hands to the worker pool without waiting for it."""
    sign = BY_NAME["EccSign"]
    payload = envelope.encode_request(sign.code, sign.request,
                                      sign.request(key_id=1, digest=bytes(48), digest_algo=2),
                                      rev=envelope.rev(1, 0), sess_id=1)
    flags = link.SessionFlags(link.SessionOp.IN_SESSION, True).to_byte()
    return link.encode_frame(1, link.Request(1, 1, 0, flags, 1, 8192, payload))


def test_a_peer_that_never_reads_cannot_grow_the_backend(tmp_path: Path, firmware_dir: Path, reliability) -> None:
    sock = tmp_path / "run" / "hsm.sock"
    with BackendProcess(sock, tmp_path / "state", tmp_path / "backend.log",
                        ("--firmware", str(firmware_dir))) as backend:
        peer = socket.socket(socket.AF_UNIX)
        peer.connect(str(sock))
        peer.sendall(link.encode_frame(0, link.Hello.make("SN-FLOOD")))
        time.sleep(1.0)                     # first power-on
        idle = rss_mb(backend.pid)
        frame = flood_frame()
        data = memoryview(frame * FLOOD_FRAMES)
        peer.setblocking(False)
        deadline = time.monotonic() + 20
        while data and time.monotonic() < deadline:
            try:
                data = data[peer.send(data[:1 << 16]):]
            except BlockingIOError:
                time.sleep(0.005)
        sent = FLOOD_FRAMES - len(data) // len(frame)
        time.sleep(1.0)
        peak = rss_mb(backend.pid)
        peer.close()
    assert sent > 1000, "the backend read almost nothing"
    assert peak - idle < RSS_BUDGET_MB, f"RSS grew from {idle:.0f} MB to {peak:.0f} MB"
    reliability.record("flooding peer", f"{FLOOD_FRAMES:,} EccSign requests pushed without reading any "
                       "answer", 1, f"backend stopped reading after {sent:,}; RSS {idle:.0f} -> {peak:.0f} MB "
                       f"(budget +{RSS_BUDGET_MB} MB)")
