"""PCI(e) config space, enumeration, BAR assignment and MSI-X set-up on a q35 machine.

Nothing runs firmware under qtest, so the test plays BIOS: it enables the q35 MMCONFIG window
(PCIEXBAR, written once through the legacy 0xCF8/0xCFC ports), then reaches every function's 4 KiB
config space through that ECAM window, sizes and places BARs itself, and points MSI-X messages at
guest RAM so that each interrupt becomes a memory write the test can read back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from pyhsm.testing.qtest.memory import GuestMemory
from pyhsm.testing.qtest.protocol import Qtest

ECAM_BASE = 0xB000_0000  # q35's default PCIEXBAR, 256 buses
MCH_PCIEXBAR = 0x60
MMIO_WINDOW = 0xE000_0000  # free below the IOAPIC with -m up to 2 GiB

VENDOR_ID, DEVICE_ID, COMMAND, STATUS = 0x00, 0x02, 0x04, 0x06
REVISION, CLASS_CODE, HEADER_TYPE, BAR0, CAP_POINTER = 0x08, 0x09, 0x0E, 0x10, 0x34
COMMAND_MEMORY, COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE = 1 << 1, 1 << 2, 1 << 10
STATUS_CAP_LIST = 1 << 4
CAP_ID_MSIX, CAP_ID_PCIE = 0x11, 0x10
EXT_CAP_ID_SRIOV = 0x0010
EXTENDED_CONFIG = 0x100


class PciConfig:
    """Config space of every function on the machine, through ECAM."""

    def __init__(self, qtest: Qtest) -> None:
        self.qtest = qtest
        qtest.outl(0xCF8, 0x8000_0000 | MCH_PCIEXBAR)  # 00:00.0, the q35 host bridge
        qtest.outl(0xCFC, ECAM_BASE | 1)  # 256 MiB window, enabled
        qtest.outl(0xCF8, 0x8000_0000 | MCH_PCIEXBAR + 4)
        qtest.outl(0xCFC, 0)

    @staticmethod
    def address(bus: int, dev: int, fn: int, offset: int) -> int:
        return ECAM_BASE | bus << 20 | dev << 15 | fn << 12 | offset

    def read(self, bdf: tuple[int, int, int], offset: int, size: int = 4) -> int:
        addr = self.address(*bdf, offset)
        return {1: self.qtest.readb, 2: self.qtest.readw, 4: self.qtest.readl}[size](addr)

    def write(self, bdf: tuple[int, int, int], offset: int, value: int, size: int = 4) -> None:
        addr = self.address(*bdf, offset)
        {1: self.qtest.writeb, 2: self.qtest.writew, 4: self.qtest.writel}[size](addr, value)


@dataclass(frozen=True)
class Bar:
    index: int
    address: int
    size: int
    is_64bit: bool
    is_io: bool
    prefetchable: bool


class PciFunction:
    """One function's config space."""

    def __init__(self, config: PciConfig, bus: int, dev: int, fn: int) -> None:
        self.config = config
        self.bdf = (bus, dev, fn)

    def read(self, offset: int, size: int = 4) -> int:
        return self.config.read(self.bdf, offset, size)

    def write(self, offset: int, value: int, size: int = 4) -> None:
        self.config.write(self.bdf, offset, value, size)

    @property
    def vendor_id(self) -> int:
        return self.read(VENDOR_ID, 2)

    @property
    def device_id(self) -> int:
        return self.read(DEVICE_ID, 2)

    @property
    def class_code(self) -> int:
        """Base class, sub-class and programming interface as one 24-bit value."""
        return self.read(REVISION) >> 8

    def capabilities(self) -> dict[int, int]:
        """Standard capability id -> config offset."""
        caps: dict[int, int] = {}
        if not self.read(STATUS, 2) & STATUS_CAP_LIST:
            return caps
        offset = self.read(CAP_POINTER, 1) & 0xFC
        for _ in range(48):  # a malformed list cannot loop forever
            if not offset:
                break
            header = self.read(offset, 2)
            caps.setdefault(header & 0xFF, offset)
            offset = (header >> 8) & 0xFC
        return caps

    def extended_capabilities(self) -> dict[int, int]:
        """PCIe extended capability id -> config offset."""
        caps: dict[int, int] = {}
        offset = EXTENDED_CONFIG
        for _ in range(960):
            header = self.read(offset)
            if header in (0, 0xFFFF_FFFF):
                break
            caps.setdefault(header & 0xFFFF, offset)
            offset = header >> 20 & 0xFFC
            if offset < EXTENDED_CONFIG:
                break
        return caps

    def probe_bars(self) -> list[Bar]:
        """Size every implemented BAR (writing all-ones and restoring); addresses are current."""
        bars: list[Bar] = []
        index = 0
        while index < 6:
            offset = BAR0 + 4 * index
            original = self.read(offset)
            self.write(offset, 0xFFFF_FFFF)
            low = self.read(offset)
            self.write(offset, original)
            is_io = bool(original & 1)
            is_64 = not is_io and (original >> 1 & 3) == 2
            mask, high = (~3 if is_io else ~0xF) & 0xFFFF_FFFF, 0xFFFF_FFFF
            if is_64:
                original_high = self.read(offset + 4)
                self.write(offset + 4, 0xFFFF_FFFF)
                high = self.read(offset + 4)
                self.write(offset + 4, original_high)
                original |= original_high << 32
            sized = (high << 32 | low & mask) if is_64 else (0xFFFF_FFFF_0000_0000 | low & mask)
            if low & mask:
                size = (~sized & 0xFFFF_FFFF_FFFF_FFFF) + 1
                bars.append(Bar(index, original & ~0xF, size, is_64, is_io, bool(original & 8)))
            index += 2 if is_64 else 1
        return bars

    def assign_bars(self, window: int = MMIO_WINDOW) -> dict[int, Bar]:
        """Place every memory BAR at a naturally aligned address from ``window`` upwards."""
        placed: dict[int, Bar] = {}
        cursor = window
        for bar in self.probe_bars():
            if bar.is_io:
                continue
            cursor = -(-cursor // bar.size) * bar.size
            offset = BAR0 + 4 * bar.index
            self.write(offset, cursor & 0xFFFF_FFFF)
            if bar.is_64bit:
                self.write(offset + 4, cursor >> 32)
            placed[bar.index] = Bar(bar.index, cursor, bar.size, bar.is_64bit, False, bar.prefetchable)
            cursor += bar.size
        return placed

    def enable(self) -> None:
        """Memory decoding and bus mastering on, INTx off (MSI-X only)."""
        command = self.read(COMMAND, 2)
        self.write(COMMAND, command | COMMAND_MEMORY | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE, 2)


def enumerate_functions(config: PciConfig, bus: int = 0) -> list[PciFunction]:
    """Every present function on ``bus``."""
    found: list[PciFunction] = []
    for dev in range(32):
        for fn in range(8):
            function = PciFunction(config, bus, dev, fn)
            if function.vendor_id == 0xFFFF:
                if fn == 0:
                    break
                continue
            found.append(function)
            if fn == 0 and not function.read(HEADER_TYPE, 1) & 0x80:
                break
    return found


def find_function(config: PciConfig, vendor: int, device: int) -> PciFunction:
    for function in enumerate_functions(config):
        if (function.vendor_id, function.device_id) == (vendor, device):
            return function
    raise LookupError(f"no PCI function {vendor:04x}:{device:04x} on bus 0")


class Msix:
    """A function's MSI-X table, each vector aimed at its own guest-RAM word (data = vector number)."""

    SENTINEL = 0xFFFF_FFFF
    ENTRY = 16

    def __init__(self, function: PciFunction, bars: dict[int, Bar], memory: GuestMemory) -> None:
        self.qtest = function.config.qtest
        self.function = function
        self.cap = function.capabilities()[CAP_ID_MSIX]
        control = function.read(self.cap + 2, 2)
        self.vectors = (control & 0x7FF) + 1
        table, pba = function.read(self.cap + 4), function.read(self.cap + 8)
        self.table_bir, self.table_offset = table & 7, table & ~7
        self.pba_bir, self.pba_offset = pba & 7, pba & ~7
        self.table = bars[self.table_bir].address + self.table_offset
        self.pba = bars[self.pba_bir].address + self.pba_offset
        self.words = memory.alloc(4 * self.vectors)

    def entry_address(self, vector: int) -> int:
        return self.table + self.ENTRY * vector

    def setup(self) -> None:
        """Program and unmask every vector, then enable MSI-X with the function mask clear."""
        for vector in range(self.vectors):
            self.qtest.writel(self.words + 4 * vector, self.SENTINEL)
            entry = self.entry_address(vector)
            message = self.words + 4 * vector
            self.qtest.writel(entry, message & 0xFFFF_FFFF)
            self.qtest.writel(entry + 4, message >> 32)
            self.qtest.writel(entry + 8, vector)
            self.qtest.writel(entry + 12, 0)
        control = self.function.read(self.cap + 2, 2)
        self.function.write(self.cap + 2, (control | 1 << 15) & ~(1 << 14), 2)

    def entries(self) -> list[tuple[int, int, int]]:
        """(address, data, vector control) of every table entry, as the device holds them."""
        out = []
        for vector in range(self.vectors):
            raw = self.qtest.read(self.entry_address(vector), self.ENTRY)
            out.append((int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:12], "little"),
                        int.from_bytes(raw[12:], "little")))
        return out

    def take(self, vector: int) -> bool:
        """True if the vector fired since the last call (and re-arm it)."""
        word = self.words + 4 * vector
        value = self.qtest.readl(word)
        if value == self.SENTINEL:
            return False
        if value != vector:
            raise AssertionError(f"MSI-X vector {vector} wrote data {value:#x}")
        self.qtest.writel(word, self.SENTINEL)
        return True

    def wait(self, vector: int, timeout_s: float = 5.0) -> bool:
        """Poll for the vector; False if it did not fire within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self.take(vector):
            if time.monotonic() > deadline:
                return False
        return True
