"""The client through SocketTransport and the real link server (pyhsm.backend.server.Backend) to DDI partitions."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import HsmClient
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.protocol import link
from pyhsm.protocol.ddi.status import DdiStatus as S
from pyhsm.protocol.ddi.types import AesKeySize, EccCurve
from tests.backend.ddi.ddi_backend import make_backend, serving
from tests.backend.ddi.ddi_helpers import APP_ID, BK3, PIN, expect


@pytest.fixture
def socket_path(tmp_path: Path):
    path = tmp_path / "hsm.sock"
    with serving(make_backend(tmp_path / "state"), path):
        yield path


def test_full_flow_over_the_socket(socket_path: Path) -> None:
    transport = SocketTransport(socket_path, serial="SOCK-0001")
    c = HsmClient(transport)
    assert c.get_api_rev().max.major == 1
    c.establish_credential(APP_ID, PIN, c.init_bk3(BK3), ec.generate_private_key(ec.SECP384R1()))
    c.open_session(APP_ID, PIN)
    key = c.ecc_generate_key_pair(EccCurve.P384, tag=1)
    assert len(c.ecc_sign(key.private_key_id, bytes(48))) == 96
    c.close_session()
    expect(S.FileHandleNoExistingSession, c.open_key, 1)
    transport.reset(link.ResetKind.FUNCTION)
    transport.close()


def test_concurrent_sessions_share_one_connection(socket_path: Path) -> None:
    transport = SocketTransport(socket_path, serial="SOCK-0002")
    first = HsmClient(transport)
    first.establish_credential(APP_ID, PIN, first.init_bk3(BK3), ec.generate_private_key(ec.SECP384R1()))
    clients = [HsmClient(transport) for _ in range(8)]
    for c in clients:
        c.open_session(APP_ID, PIN)
    keys = [c.aes_generate_key(AesKeySize.Aes256, session_only=True) for c in clients]
    errors: list[BaseException] = []

    def work(c: HsmClient, key_id: int) -> None:
        try:
            for _ in range(20):
                c.aes_encrypt_decrypt(key_id, 1, bytes(64), bytes(16))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c, k.key_id)) for c, k in zip(clients, keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sorted(c.session_id for c in clients) == list(range(8))
    transport.close()


def test_second_connection_for_the_same_device_is_refused(socket_path: Path) -> None:
    first = SocketTransport(socket_path, serial="SOCK-0003")
    with pytest.raises(ConnectionRefusedError):
        SocketTransport(socket_path, serial="SOCK-0003")
    first.close()


def test_link_loss_wakes_every_waiting_caller(tmp_path: Path) -> None:
    """A backend that takes requests and then dies: every caller blocked on an answer gets
    ConnectionError promptly (none hangs until its timeout)."""
    import socket as sockets

    path = tmp_path / "silent.sock"
    server = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    received = threading.Event()

    def silent_backend() -> None:
        conn, _ = server.accept()
        header = conn.recv(link.HEADER.size)
        _, msg_id, length = link.decode_header(header)
        conn.recv(length)
        conn.sendall(link.encode_frame(msg_id, link.HelloAck(1, 0, 8, link.HelloAck.ACCEPTED)))
        got = b""
        while len(got) < 4 * (link.HEADER.size + link.Request.LAYOUT.size + 14):
            got += conn.recv(4096)
        received.set()
        conn.close()

    thread = threading.Thread(target=silent_backend)
    thread.start()
    transport = SocketTransport(path, serial="SILENT-1", timeout=20)
    outcomes: list[str] = []

    def call() -> None:
        try:
            HsmClient(transport).get_api_rev()
            outcomes.append("answered")
        except ConnectionError:
            outcomes.append("ConnectionError")

    callers = [threading.Thread(target=call) for _ in range(4)]
    for c in callers:
        c.start()
    assert received.wait(10)
    for c in callers:
        c.join(5)
    assert outcomes == ["ConnectionError"] * 4
    thread.join(5)
    server.close()
