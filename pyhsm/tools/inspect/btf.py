"""The kernel's BTF type information (its ``.BTF`` section): structure member offsets by name.

Only what introspection needs is kept: struct/union members and type sizes; typedefs, qualifiers
and anonymous members are looked through.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
# kind -> (bytes after the common 12, bytes per vlen entry)
_TRAILER = {1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0),
            8: (0, 0), 9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0),
            15: (0, 12), 16: (0, 0), 17: (4, 0), 18: (0, 0), 19: (0, 12)}
STRUCT, UNION, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG, ARRAY = 4, 5, 8, 9, 10, 11, 18, 3
_LOOK_THROUGH = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}


class BtfError(ValueError):
    """Malformed BTF, or a type or member that is not there."""


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int


@dataclass(frozen=True)
class BtfType:
    kind: int
    name: str
    size_or_type: int
    members: tuple[Member, ...] = ()


class Btf:
    """Parsed BTF; ``offset("task_struct", "tasks")`` and dotted paths like ``"desc_ring.descs"``."""

    def __init__(self, data: bytes) -> None:
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise BtfError(f"bad BTF magic 0x{magic:04x}")
        strings = data[hdr_len + str_off:hdr_len + str_off + str_len]

        def name(offset: int) -> str:
            return strings[offset:strings.index(b"\0", offset)].decode()
        self.types: list[BtfType] = [BtfType(0, "void", 0)]
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        while pos < end:
            name_off, info, size_or_type = _TYPE.unpack_from(data, pos)
            kind, vlen, bitfield = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            if kind not in _TRAILER:
                raise BtfError(f"unknown BTF kind {kind} at offset {pos}")
            pos += _TYPE.size
            fixed, per = _TRAILER[kind]
            members: tuple[Member, ...] = ()
            if kind in (STRUCT, UNION):
                members = tuple(
                    Member(name(m_name), m_type, (m_off & 0xFFFFFF) if bitfield else m_off)
                    for m_name, m_type, m_off in
                    (struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen)))
            self.types.append(BtfType(kind, name(name_off), size_or_type, members))
            pos += fixed + per * vlen
        self._by_name = {t.name: i for i, t in enumerate(self.types)
                         if t.kind in (STRUCT, UNION) and t.name and t.members}

    def _resolve(self, type_id: int) -> BtfType:
        t = self.types[type_id]
        while t.kind in _LOOK_THROUGH:
            t = self.types[t.size_or_type]
        return t

    def struct(self, name: str) -> BtfType:
        if name not in self._by_name:
            raise BtfError(f"no struct {name} in BTF")
        return self.types[self._by_name[name]]

    def size(self, name: str) -> int:
        return self.struct(name).size_or_type

    def _member(self, t: BtfType, name: str) -> tuple[int, BtfType] | None:
        for m in t.members:
            if m.name == name:
                return m.bit_offset // 8, self._resolve(m.type_id)
            if not m.name:   # anonymous struct/union: look inside
                inner = self._resolve(m.type_id)
                found = self._member(inner, name) if inner.kind in (STRUCT, UNION) else None
                if found:
                    return m.bit_offset // 8 + found[0], found[1]
        return None

    def offset(self, struct_name: str, path: str) -> int:
        """Byte offset of ``path`` (dotted members) inside ``struct_name``."""
        t, total = self.struct(struct_name), 0
        for part in path.split("."):
            found = self._member(t, part)
            if found is None:
                raise BtfError(f"struct {struct_name} has no member {path}")
            total += found[0]
            t = found[1]
        return total
