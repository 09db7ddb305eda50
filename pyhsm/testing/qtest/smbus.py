"""q35's ICH9 SMBus host controller (00:1f.3) driven through its I/O registers under qtest.

The test plays the Linux ``i2c-i801`` driver: it gives the function an I/O BAR, enables the host
(HOSTC.HST_EN), and runs byte data, word data, SMBus block write (32-byte buffer mode, AUXCTL.E32B)
and SMBus block read transactions, with smbus2's method names so that ``pyhsm.client.serialbus.mailbox`` runs
unchanged over it. A transaction the controller fails (no device at the address: HSTSTS.DEV_ERR,
or a timeout) raises ``OSError``, as i2c-dev does.
"""

from __future__ import annotations

import errno
import time

from pyhsm.testing.qtest.pci import PciConfig, PciFunction
from pyhsm.testing.qtest.protocol import Qtest

SMBUS_BDF = (0, 0x1F, 3)
SMB_BASE_BAR = 0x20          # BAR4: I/O space, 32 bytes
HOSTC = 0x40
HOSTC_HST_EN = 0x01
IO_BASE = 0xC000
COMMAND_IO = 0x01
HSTSTS, HSTCNT, HSTCMD, HSTADD, HSTDAT0, HSTDAT1, BLKDAT, AUXCTL = 0, 2, 3, 4, 5, 6, 7, 0x0D
STS_HOST_BUSY, STS_INTR, STS_DEV_ERR, STS_BUS_ERR, STS_FAILED = 0x01, 0x02, 0x04, 0x08, 0x10
STS_BYTE_DONE = 0x80
CNT_START = 0x40
PROT_BYTE_DATA, PROT_WORD_DATA, PROT_BLOCK = 2, 3, 5
AUX_E32B = 0x02
TIMEOUT_S = 2.0


class Ich9Smbus:
    """The SMBus host of one qtest machine (q35)."""

    def __init__(self, qtest: Qtest, io_base: int = IO_BASE) -> None:
        self._qt = qtest
        self._base = io_base
        fn = PciFunction(PciConfig(qtest), *SMBUS_BDF)
        if (fn.vendor_id, fn.device_id) != (0x8086, 0x2930):
            raise RuntimeError(f"00:1f.3 is {fn.vendor_id:04x}:{fn.device_id:04x}, not the ICH9 SMBus")
        fn.write(SMB_BASE_BAR, io_base | 1)
        fn.write(0x04, fn.read(0x04, 2) | COMMAND_IO, 2)
        fn.write(HOSTC, HOSTC_HST_EN, 1)
        self.transactions = 0

    def _out(self, reg: int, value: int) -> None:
        self._qt.outb(self._base + reg, value)

    def _in(self, reg: int) -> int:
        return self._qt.inb(self._base + reg)

    def _run(self, address: int, read: bool, command: int, protocol: int) -> None:
        """One transaction: start it and wait for INTR; ``OSError`` on DEV_ERR, BUS_ERR, FAILED."""
        self._out(HSTSTS, 0xFF)
        self._out(HSTADD, address << 1 | read)
        self._out(HSTCMD, command)
        self._out(HSTCNT, CNT_START | protocol << 2)
        self.transactions += 1
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            status = self._in(HSTSTS)
            if status & (STS_DEV_ERR | STS_BUS_ERR | STS_FAILED):
                self._out(HSTSTS, 0xFF)
                raise OSError(errno.ENXIO, f"SMBus transaction to 0x{address:02x} failed (HSTSTS 0x{status:02x})")
            if status & STS_INTR and not status & STS_HOST_BUSY:
                return
            if time.monotonic() > deadline:
                raise OSError(errno.ETIMEDOUT, f"SMBus transaction to 0x{address:02x} timed out")

    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        self._run(i2c_addr, True, register, PROT_BYTE_DATA)
        return self._in(HSTDAT0)

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        self._run(i2c_addr, True, register, PROT_WORD_DATA)
        return self._in(HSTDAT0) | self._in(HSTDAT1) << 8

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._out(HSTDAT0, value)
        self._run(i2c_addr, False, register, PROT_BYTE_DATA)

    def write_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None:
        if not 1 <= len(data) <= 32:
            raise ValueError("an SMBus block holds 1 to 32 bytes")
        self._out(AUXCTL, AUX_E32B)
        self._out(HSTDAT0, len(data))
        for byte in data:
            self._out(BLKDAT, byte)
        try:
            self._run(i2c_addr, False, register, PROT_BLOCK)
        finally:
            self._out(AUXCTL, 0)

    def read_block_data(self, i2c_addr: int, register: int) -> list[int]:
        self._out(AUXCTL, AUX_E32B)
        try:
            self._run(i2c_addr, True, register, PROT_BLOCK)
            count = self._in(HSTDAT0)
            return [self._in(BLKDAT) for _ in range(count)]
        finally:
            self._out(AUXCTL, 0)
