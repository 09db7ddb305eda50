"""Guest-physical memory from a file: the ``memory-backend-file`` of a running ``pyhsm run --debug``
(live, shared with QEMU), a QMP ``dump-guest-memory`` ELF core, or a raw ``pmemsave`` image.

A raw file holds RAM in QEMU's order; on q35 RAM above the low-memory split (2 GiB when the guest
has 2.75 GiB or more, else all of it) sits at 4 GiB and up in the physical address space.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

from pyhsm.tools.inspect import elf

Q35_LOWMEM_LIMIT = 0xB000_0000
Q35_LOWMEM_SPLIT = 0x8000_0000
FOUR_GIB = 1 << 32


class UnmappedAddress(LookupError):
    """A guest-physical address that the memory file does not hold."""


@dataclass(frozen=True)
class Region:
    """``size`` bytes of guest-physical memory at ``phys``, stored at ``offset`` in the file."""

    phys: int
    offset: int
    size: int


class PhysicalMemory:
    """Reads guest-physical memory; ``regions`` maps physical ranges to file offsets."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "rb")
        self.data = mmap.mmap(self._file.fileno(), 0, prot=mmap.PROT_READ)
        self.regions = _elf_regions(self.data) if self.data[:4] == b"\x7fELF" else \
            _q35_regions(len(self.data))

    def read(self, phys: int, size: int) -> bytes:
        """``size`` bytes at ``phys``; raises ``UnmappedAddress`` if any of them is not in the file."""
        out = bytearray()
        while size:
            region = self._region(phys)
            start = region.offset + phys - region.phys
            chunk = min(size, region.phys + region.size - phys)
            out += self.data[start:start + chunk]
            phys, size = phys + chunk, size - chunk
        return bytes(out)

    def _region(self, phys: int) -> Region:
        for region in self.regions:
            if region.phys <= phys < region.phys + region.size:
                return region
        raise UnmappedAddress(f"guest-physical address 0x{phys:x} is not in {self.path}")

    def u64(self, phys: int) -> int:
        return int.from_bytes(self.read(phys, 8), "little")

    def u32(self, phys: int) -> int:
        return int.from_bytes(self.read(phys, 4), "little")

    def find_all(self, needle: bytes) -> list[int]:
        """Every guest-physical address where ``needle`` starts (within one region)."""
        hits = []
        for region in self.regions:
            pos, end = region.offset, region.offset + region.size
            while (pos := self.data.find(needle, pos, end)) != -1:
                hits.append(region.phys + pos - region.offset)
                pos += 1
        return hits

    def close(self) -> None:
        self.data.close()
        self._file.close()

    def __enter__(self) -> "PhysicalMemory":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _q35_regions(ram: int) -> list[Region]:
    low = ram if ram < Q35_LOWMEM_LIMIT else Q35_LOWMEM_SPLIT
    regions = [Region(0, 0, low)]
    if ram > low:
        regions.append(Region(FOUR_GIB, low, ram - low))
    return regions


def _elf_regions(data: mmap.mmap) -> list[Region]:
    return [Region(s.paddr, s.offset, s.filesz) for s in elf.segments(data)
            if s.type == elf.PT_LOAD and s.filesz]
