"""Just enough ELF64 (little-endian) to find sections of a vmlinux and load segments of a core dump."""

from __future__ import annotations

import struct
from dataclasses import dataclass

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_PHDR = struct.Struct("<IIQQQQQQ")
PT_LOAD = 1


class ElfError(ValueError):
    """Not a little-endian ELF64 file, or a truncated one."""


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    addr: int
    offset: int
    size: int


@dataclass(frozen=True)
class Segment:
    type: int
    offset: int
    vaddr: int
    paddr: int
    filesz: int
    memsz: int


def _header(data: bytes | memoryview) -> tuple:
    if len(data) < _EHDR.size or bytes(data[:4]) != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ElfError("not a little-endian ELF64 file")
    return _EHDR.unpack_from(data)


def sections(data: bytes | memoryview) -> dict[str, Section]:
    """Sections by name."""
    *_, shoff, _flags, _ehsize, _phentsize, _phnum, shentsize, shnum, shstrndx = _header(data)
    raw = [_SHDR.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    names_at = raw[shstrndx][4]

    def name(offset: int) -> str:
        start = names_at + offset
        return bytes(data[start:bytes(data[start:start + 256]).index(b"\0") + start]).decode()
    return {name(r[0]): Section(name(r[0]), r[1], r[3], r[4], r[5]) for r in raw}


def segments(data: bytes | memoryview) -> list[Segment]:
    """Program headers."""
    _ident, _type, _machine, _version, _entry, phoff, _shoff, _flags, _ehsize, phentsize, phnum, *_ = \
        _header(data)
    found = []
    for i in range(phnum):
        kind, _pflags, offset, vaddr, paddr, filesz, memsz, _align = \
            _PHDR.unpack_from(data, phoff + i * phentsize)
        found.append(Segment(kind, offset, vaddr, paddr, filesz, memsz))
    return found
