"""Declared binary records: a fixed ``struct`` layout, optionally followed by the rest of the bytes.

Each message of the serial-bus protocols is one ``Record`` subclass (a frozen dataclass whose fields
are the layout's values in order, plus ``rest`` when ``HAS_REST``); one encoder and one decoder serve
them all, and decoding fails with ``RecordError`` on short input or unexpected trailing bytes.
"""

from __future__ import annotations

import struct
from dataclasses import astuple
from typing import ClassVar, TypeVar

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """Bytes that do not fit the declared layout."""


class Record:
    LAYOUT: ClassVar[struct.Struct]
    HAS_REST: ClassVar[bool] = False

    def encode(self) -> bytes:
        values = astuple(self)
        if self.HAS_REST:
            *fixed, rest = values
            return self.LAYOUT.pack(*fixed) + rest
        return self.LAYOUT.pack(*values)

    @classmethod
    def decode(cls: type[R], data: bytes) -> R:
        """The record in ``data``; ``RecordError`` if too short, or too long for a record without rest."""
        if len(data) < cls.LAYOUT.size:
            raise RecordError(f"{cls.__name__}: {len(data)} bytes, at least {cls.LAYOUT.size} needed")
        values = list(cls.LAYOUT.unpack_from(data))
        rest = bytes(data[cls.LAYOUT.size:])
        if cls.HAS_REST:
            values.append(rest)
        elif rest:
            raise RecordError(f"{cls.__name__}: {len(rest)} unexpected trailing bytes")
        return cls(*values)
