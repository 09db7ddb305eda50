"""The DDI command set through the real QEMU device (qtest) and ``pyhsm serve``: the client's side band
travels in real SQEs, the completion's session fields come back in real CQEs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import DeviceError, HsmClient
from pyhsm.host.backend import BackendProcess
from pyhsm.protocol.ddi.status import DdiStatus as S
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, EccCurve
from pyhsm.testing.qtest.controller import open_controller
from pyhsm.testing.qtest.machine import Machine, hsm_device_args
from pyhsm.testing.qtest.transport import QtestTransport
from tests.backend.ddi.ddi_helpers import APP_ID, BK3, PIN, expect

pytestmark = pytest.mark.qemu
LINK_UP_TIMEOUT_S = 10.0


@pytest.fixture
def device_client(qemu_binary: Path, workdir: Path):
    with BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log") as backend:
        with Machine(hsm_device_args(backend.socket, serial="AZIHSM-DDI-QTEST")) as machine:
            controller = open_controller(machine.qtest)
            controller.probe()
            transport = QtestTransport(controller)
            client = HsmClient(transport)
            _wait_link_up(client)
            yield client
            transport.close()


def _wait_link_up(client: HsmClient) -> None:
    """The device answers 0x701 until its HELLO to the backend is acknowledged."""
    deadline = time.monotonic() + LINK_UP_TIMEOUT_S
    while True:
        try:
            client.get_api_rev()
            return
        except DeviceError as exc:
            if exc.status != 0x701 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_session_flow_through_the_device(device_client: HsmClient) -> None:
    c = device_client
    assert c.get_api_rev().max.major == 1
    c.establish_credential(APP_ID, PIN, c.init_bk3(BK3), ec.generate_private_key(ec.SECP384R1()))
    opened = c.open_session(APP_ID, PIN)
    assert c.session_id == opened.sess_id
    key = c.ecc_generate_key_pair(EccCurve.P384)
    assert len(c.ecc_sign(key.private_key_id, bytes(48))) == 96
    aes = c.aes_generate_key(AesKeySize.Aes256, session_only=True)
    ct = c.aes_encrypt_decrypt(aes.key_id, AesOp.Encrypt, bytes(1024), bytes(16)).msg
    assert c.aes_encrypt_decrypt(aes.key_id, AesOp.Decrypt, ct, bytes(16)).msg == bytes(1024)
    c.close_session()
    assert c.session_id is None
    c.open_session(APP_ID, PIN)
    expect(S.KeyNotFound, c.aes_encrypt_decrypt, aes.key_id, AesOp.Encrypt, bytes(16), bytes(16))
