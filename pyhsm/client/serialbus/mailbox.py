"""The host side of the serial mailbox's register interface (docs/serial-mailbox.md).

``Mailbox`` drives the registers through any object with smbus2's method names (``smbus2.SMBus`` on
``/dev/i2c-N`` in a guest, ``pyhsm.testing.qtest.smbus.Ich9Smbus`` under qtest): SMBus block writes to TX_FIFO
and CTRL.GO send a packet; SMBus block reads of RX_BLOCK receive packets (while STS.DATA_AVAIL is set), each read ending at a
packet boundary.
"""

from __future__ import annotations

import enum
import time
from typing import Protocol

REG_ID, REG_IFVER, REG_STS, REG_CTRL, REG_BURST, REG_ERROR = 0x00, 0x02, 0x04, 0x05, 0x06, 0x07
REG_TX_FIFO, REG_RX_FIFO, REG_RX_BLOCK, REG_RX_COUNT = 0x08, 0x09, 0x0A, 0x0B
STS_DATA_AVAIL, STS_PENDING, STS_LINK_UP, STS_ERROR, STS_TX_DATA = 0x01, 0x02, 0x04, 0x08, 0x10
CTRL_GO, CTRL_RETRY, CTRL_ABORT, CTRL_CLEAR = 0x01, 0x02, 0x04, 0x08
BLOCK_MAX = 32
VENDOR_ID = 0x1414
DEFAULT_ADDRESS = 0x41


class ErrorCode(enum.IntEnum):
    """REG_ERROR values made by the device (0x20 and up come from the backend: ``mctp.Drop``)."""

    NONE = 0x00
    BLOCK_COUNT = 0x01
    REGISTER = 0x02
    UNDERRUN = 0x03
    TX_OVERFLOW = 0x04
    TX_EMPTY = 0x05
    RX_OVERFLOW = 0x06
    LINK_DOWN = 0x07
    LINK_LOST = 0x08
    TIMEOUT = 0x09
    BUSY = 0x0A


class SmbusLike(Protocol):
    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...
    def read_word_data(self, i2c_addr: int, register: int) -> int: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def write_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...
    def read_block_data(self, i2c_addr: int, register: int) -> list[int]: ...


class MailboxError(Exception):
    """The mailbox latched an error; ``code`` is REG_ERROR."""

    def __init__(self, code: int, what: str) -> None:
        super().__init__(f"{what}: mailbox error 0x{code:02x} ({_code_name(code)})")
        self.code = code


def _code_name(code: int) -> str:
    from pyhsm.protocol.serialbus.mctp import Drop
    for kind in (ErrorCode, Drop):
        try:
            return kind(code).name
        except ValueError:
            pass
    return "unknown"


class Mailbox:
    """One serial mailbox at 7-bit ``address`` on ``bus``."""

    def __init__(self, bus: SmbusLike, address: int = DEFAULT_ADDRESS) -> None:
        self.bus = bus
        self.address = address

    def identify(self) -> tuple[int, int]:
        """(vendor id, interface version)."""
        return self.bus.read_word_data(self.address, REG_ID), self.bus.read_byte_data(self.address, REG_IFVER)

    def status(self) -> int:
        return self.bus.read_byte_data(self.address, REG_STS)

    def error(self) -> int:
        return self.bus.read_byte_data(self.address, REG_ERROR)

    def control(self, bits: int) -> None:
        self.bus.write_byte_data(self.address, REG_CTRL, bits)

    def abort(self) -> None:
        """Drop everything queued or in flight, clear errors, and restart the backend's assembly."""
        self.control(CTRL_ABORT)

    def check(self, what: str) -> int:
        """The status; raises ``MailboxError`` (after clearing it) if an error is latched."""
        status = self.status()
        if status & STS_ERROR:
            code = self.error()
            self.control(CTRL_CLEAR)
            raise MailboxError(code, what)
        return status

    def send(self, packet: bytes) -> None:
        """Write one packet into TX_FIFO and commit it."""
        for i in range(0, len(packet), BLOCK_MAX):
            self.bus.write_block_data(self.address, REG_TX_FIFO, list(packet[i:i + BLOCK_MAX]))
        self.control(CTRL_GO)

    def read_block(self) -> bytes:
        """Up to 32 bytes of the packet at the head of the queue; empty when none is queued."""
        return bytes(self.bus.read_block_data(self.address, REG_RX_BLOCK))

    def receive(self, timeout_s: float) -> bytes:
        """The next whole packet for the host. Raises ``MailboxError`` if the mailbox reports an error,
        ``TimeoutError`` if nothing arrives in ``timeout_s`` or the device has nothing more pending.
        RX_BLOCK is read only while STS.DATA_AVAIL is set: Linux's i2c-i801 fails a block read whose
        count is 0 (EPROTO)."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.check("receive")
            if status & STS_DATA_AVAIL:
                data = b""
                while len(data) < 2 or len(data) < data[1] + 3:   # command, count, ..., PEC
                    block = self.read_block()
                    if not block:
                        raise MailboxError(ErrorCode.UNDERRUN, "receive: packet ended early")
                    data += block
                return data
            if not status & STS_PENDING:
                raise TimeoutError("the mailbox has nothing pending for the host")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no packet within {timeout_s} s")
