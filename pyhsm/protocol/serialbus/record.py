"""Declared binary records: a fixed ``struct`` layout, optionally followed by the rest of the bytes.

Each message of the serial-bus protocols is one ``Record`` subclass, declared as
``class Name(Record, layout="<HH"):`` with one field per value of the layout, in order, and a last
field ``rest: bytes = b""`` when the record takes the bytes after the layout. The subclass becomes a
frozen dataclass; one encoder and one decoder serve them all, and decoding fails with ``RecordError``
on short input or, without ``rest``, on trailing bytes.
"""

from __future__ import annotations

import struct
from dataclasses import Field, astuple, dataclass, fields
from typing import Any, ClassVar, TypeVar, dataclass_transform

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """Bytes that do not fit the declared layout."""


@dataclass_transform(frozen_default=True)
class Record:
    LAYOUT: ClassVar[struct.Struct]
    HAS_REST: ClassVar[bool]
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]   # made a dataclass by __init_subclass__

    def __init_subclass__(cls, layout: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True)(cls)
        cls.LAYOUT = struct.Struct(layout)
        cls.HAS_REST = any(f.name == "rest" for f in fields(cls))

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


class Empty(Record, layout=""):
    """A message body with nothing in it."""


class Raw(Record, layout=""):
    """A message body taken whole, for bodies whose layout depends on the header."""
    rest: bytes = b""
