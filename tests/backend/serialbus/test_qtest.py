"""The azihsm-i2c device under qtest, driven through q35's ICH9 SMBus host registers: registers,
attestation, bus errors, a missing, silent, killed and restarted backend, and a device reset."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from pyhsm.client import HsmClient
from pyhsm.client.serialbus import mailbox as mb
from pyhsm.client.serialbus.mailbox import ErrorCode, Mailbox, MailboxError
from pyhsm.client.serialbus.requester import HOST_ADDRESS, HOST_EID, MctpRequester, attest
from pyhsm.host.backend import BackendProcess
from pyhsm.protocol import link
from pyhsm.protocol.dice.firmware import Stage
from pyhsm.protocol.serialbus import control
from pyhsm.protocol.serialbus.mctp import Drop, packetize
from pyhsm.protocol.serialbus.vdm import Command, request
from pyhsm.testing.qtest.controller import open_controller
from pyhsm.testing.qtest.machine import MAILBOX_QOM_PATH, Machine, hsm_device_args, mailbox_device_args
from pyhsm.testing.qtest.smbus import Ich9Smbus
from pyhsm.testing.qtest.transport import QtestTransport

pytestmark = pytest.mark.usefixtures("qemu_binary")

SERIAL = "AZIHSM-I2C-QTEST"
LINK_TIMEOUT_S = 30.0


@pytest.fixture
def backend(workdir: Path) -> Iterator[BackendProcess]:
    with BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log") as process:
        yield process


def wait_link(box: Mailbox, up: bool = True) -> None:
    deadline = time.monotonic() + LINK_TIMEOUT_S
    while bool(box.status() & mb.STS_LINK_UP) != up:
        assert time.monotonic() < deadline, f"link never went {'up' if up else 'down'}"
        time.sleep(0.02)


def two_packets() -> list[bytes]:
    """A 100-byte management DDI request: two packets (SOM, then EOM)."""
    body = request(Command.MANAGEMENT_DDI, bytes(95))
    return [p.encode() for p in packetize(body, dest_addr=mb.DEFAULT_ADDRESS, src_addr=HOST_ADDRESS, dest_eid=0,
                                          src_eid=HOST_EID, tag=5, tag_owner=True)]


def expect_error(box: Mailbox, code: int) -> None:
    with pytest.raises(MailboxError) as caught:
        box.check("test")
    assert caught.value.code == code
    assert not box.status() & mb.STS_ERROR          # check() cleared it


def test_registers_control_and_attestation(backend: BackendProcess, firmware: list[Stage]) -> None:
    with Machine(mailbox_device_args(backend.socket, serial=SERIAL)) as machine:
        bus = Ich9Smbus(machine.qtest)
        box = Mailbox(bus)
        assert box.identify() == (0x1414, 1)
        wait_link(box)
        assert machine.qom_get("link-state", MAILBOX_QOM_PATH) == "up"
        mctp = MctpRequester(box)
        assert mctp.control(control.Command.GET_MESSAGE_TYPE_SUPPORT) == bytes([3, 0, 5, 0x7E])
        result = attest(mctp, firmware)   # how many bus transactions it takes depends on timing (status polls)
        assert sorted(result.measurements) == [1, 2, 3]
        assert box.status() & ~mb.STS_LINK_UP == 0      # nothing pending, queued or latched


def test_bus_errors_give_defined_status(backend: BackendProcess) -> None:
    with Machine(mailbox_device_args(backend.socket, serial=SERIAL)) as machine:
        bus = Ich9Smbus(machine.qtest)
        box = Mailbox(bus)
        wait_link(box)
        bus.write_byte_data(box.address, mb.REG_STS, 1)
        expect_error(box, ErrorCode.REGISTER)
        assert bus.read_byte_data(box.address, 0x30) == 0xFF
        expect_error(box, ErrorCode.REGISTER)
        bus.write_byte_data(box.address, mb.REG_TX_FIFO, 5)   # a count byte and no data
        expect_error(box, ErrorCode.BLOCK_COUNT)
        box.control(mb.CTRL_GO)
        expect_error(box, ErrorCode.TX_EMPTY)
        assert bus.read_byte_data(box.address, mb.REG_RX_FIFO) == 0xFF
        expect_error(box, ErrorCode.UNDERRUN)
        for _ in range(9):
            bus.write_block_data(box.address, mb.REG_TX_FIFO, [0] * 32)
        assert box.status() & mb.STS_TX_DATA
        box.control(mb.CTRL_GO)
        expect_error(box, ErrorCode.TX_OVERFLOW)
        box.send(b"\x0f\x01\x21\x00")                          # too short for MCTP: dropped by the backend
        with pytest.raises(MailboxError) as caught:
            box.receive(5.0)
        assert caught.value.code == Drop.TOO_SHORT
        with pytest.raises(OSError):
            bus.read_byte_data(0x42, mb.REG_ID)                # no target there: the controller sees a NAK
        assert MctpRequester(box).control(control.Command.GET_ENDPOINT_ID)[0] == 0
        assert machine.alive()


def test_missing_backend_is_reported_at_once(workdir: Path) -> None:
    with Machine(mailbox_device_args(workdir / "nobody.sock", serial=SERIAL)) as machine:
        box = Mailbox(Ich9Smbus(machine.qtest))
        assert not box.status() & mb.STS_LINK_UP
        started = time.monotonic()
        box.send(two_packets()[0])
        expect_error(box, ErrorCode.LINK_DOWN)
        assert time.monotonic() - started < 1.0
        assert machine.qom_get("link-state", MAILBOX_QOM_PATH) == "down"


class SilentBackend:
    """Accepts one device, answers its HELLO, then reads and never answers."""

    def __init__(self, path: Path) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.conn: socket.socket | None = None
        self.hello: link.Hello | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.conn, _ = self.server.accept()
        header = self.conn.recv(16, socket.MSG_WAITALL)
        _, _, length = link.decode_header(header)
        msg_id, self.hello = link.decode_frame(header + self.conn.recv(length, socket.MSG_WAITALL))
        self.conn.sendall(link.encode_frame(msg_id, link.HelloAck(1, 0, 8, 0)))

    def close(self) -> None:
        if self.conn:
            self.conn.close()
        self.server.close()


def test_silent_backend_times_out_and_a_lost_link_is_reported(workdir: Path) -> None:
    silent = SilentBackend(workdir / "silent.sock")
    try:
        with Machine(mailbox_device_args(workdir / "silent.sock", serial=SERIAL, timeout_ms=500)) as machine:
            box = Mailbox(Ich9Smbus(machine.qtest))
            wait_link(box)
            assert silent.hello is not None and silent.hello.channel == link.Channel.SERIAL
            assert silent.hello.serial == SERIAL
            box.send(two_packets()[0])
            assert box.status() & mb.STS_PENDING
            machine.qtest.clock_step(501_000_000)
            expect_error(box, ErrorCode.TIMEOUT)
            assert not box.status() & mb.STS_PENDING
            box.send(two_packets()[0])
            assert box.status() & mb.STS_PENDING
            silent.close()
            wait_link(box, up=False)
            expect_error(box, ErrorCode.LINK_LOST)
            assert machine.alive()
    finally:
        silent.close()


def test_backend_killed_and_restarted_mid_message(workdir: Path, firmware: list[Stage]) -> None:
    backend = BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log")
    backend.start()
    try:
        with Machine(mailbox_device_args(backend.socket, serial=SERIAL)) as machine:
            box = Mailbox(Ich9Smbus(machine.qtest))
            wait_link(box)
            first, second = two_packets()
            box.send(first)
            backend.kill()
            wait_link(box, up=False)
            backend.start()
            wait_link(box)
            box.control(mb.CTRL_CLEAR)
            box.send(second)                  # the new backend never saw the SOM
            with pytest.raises(MailboxError) as caught:
                box.receive(5.0)
            assert caught.value.code == Drop.NO_SOM
            assert attest(MctpRequester(box), firmware).measurements
    finally:
        backend.stop()


def test_device_reset_mid_message_restarts_assembly_and_eid(backend: BackendProcess) -> None:
    with Machine(mailbox_device_args(backend.socket, serial=SERIAL)) as machine:
        box = Mailbox(Ich9Smbus(machine.qtest))
        wait_link(box)
        mctp = MctpRequester(box)
        mctp.control(control.Command.SET_ENDPOINT_ID, bytes([0, 0x30]))
        first, second = two_packets()
        box.send(first)
        machine.qmp.cmd("system_reset")
        box = Mailbox(Ich9Smbus(machine.qtest))       # the reset also reset the host controller
        assert box.status() & ~mb.STS_LINK_UP == 0
        box.send(second)
        with pytest.raises(MailboxError) as caught:
            box.receive(5.0)
        assert caught.value.code == Drop.NO_SOM
        assert MctpRequester(box).control(control.Command.GET_ENDPOINT_ID)[0] == 0


def test_both_mailboxes_are_one_device(backend: BackendProcess) -> None:
    args = hsm_device_args(backend.socket, serial=SERIAL) + mailbox_device_args(backend.socket,
                                                                                     serial=SERIAL)
    with Machine(args) as machine:
        ctrl = open_controller(machine.qtest)
        ctrl.probe()
        pcie = HsmClient(QtestTransport(ctrl))
        deadline = time.monotonic() + LINK_TIMEOUT_S
        while True:
            try:
                count = pcie.get_cert_chain_info().num_certs
                break
            except Exception:
                assert time.monotonic() < deadline, machine.log()
                time.sleep(0.1)
        pcie_chain = [bytes(pcie.get_certificate(i)) for i in range(count)]
        box = Mailbox(Ich9Smbus(machine.qtest))
        wait_link(box)
        from cryptography.hazmat.primitives.serialization import Encoding
        spdm_chain = [c.public_bytes(Encoding.DER) for c in attest(MctpRequester(box)).certificates]
        assert spdm_chain == pcie_chain
