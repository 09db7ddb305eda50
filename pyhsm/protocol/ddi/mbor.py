"""MBOR, the DDI wire encoding (docs/ddi.md, "Wire encoding"): a strict, table-driven encoder and decoder.

A schema is a ``Struct``: an ordered list of ``Field(id, name, type, optional, safe)``. ``Struct.cls`` is
a frozen dataclass with one attribute per field (absent optional fields are ``None``): the typed class
of the same name in ``pyhsm.protocol.ddi.messages``, which ``pyhsm.protocol.ddi.typegen`` generates
from the schemas (a struct that has no matching generated class gets an untyped one built here).
``safe`` plays no part in the encoding: it declares that the field's value may be shown in traces and
logs (``pyhsm.protocol.ddi.redaction``); a field not declared safe is redacted.

Strictness (stricter than the reference decoder, which skips marker checks): every integer marker,
bool byte, map header and byte-array marker must be exactly right, padding bytes must be zero, field
ids must appear in declared order with no unknown or repeated ids, map counts must match exactly,
a variable array must not exceed its maximum and a fixed array must have exactly its length.
Padding: the data of a variable byte array starts at a 4-byte-aligned offset measured from the
start of the buffer being encoded; the decoder accepts any announced pad length 0..3.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from typing import Any

try:
    from pyhsm.protocol.ddi import messages as _messages
except ImportError:  # only while bootstrapping the generator without a messages.py
    _messages = None  # type: ignore[assignment]


class MborError(ValueError):
    """The bytes are not a valid encoding of the expected schema."""


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MborError(f"truncated: need {n} bytes at offset {self.pos}")
        chunk = bytes(self.data[self.pos:self.pos + n])
        self.pos += n
        return chunk

    def next_is(self, prefix: bytes) -> bool:
        return self.data[self.pos:self.pos + len(prefix)] == prefix

    def at_end(self) -> bool:
        return self.pos == len(self.data)


class MborType:
    """One value type of the encoding."""

    def encode(self, out: bytearray, value: Any) -> None:
        raise NotImplementedError

    def decode(self, reader: Reader) -> Any:
        raise NotImplementedError

    def py_type(self) -> str:
        """The Python type of a decoded value, as written in ``pyhsm.protocol.ddi.messages``."""
        raise NotImplementedError


class UInt(MborType):
    _FORMATS = {1: ">BB", 2: ">BH", 4: ">BI", 8: ">BQ"}

    def __init__(self, marker: int, width: int) -> None:
        self.marker, self.width = marker, width
        self._layout = struct.Struct(self._FORMATS[width])

    def encode(self, out: bytearray, value: Any) -> None:
        if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
            raise MborError(f"{value!r} is not an unsigned integer")
        try:
            out += self._layout.pack(self.marker, value)
        except struct.error:
            raise MborError(f"{value} does not fit in u{8 * self.width}") from None

    def decode(self, reader: Reader) -> int:
        marker, value = self._layout.unpack(reader.take(self._layout.size))
        if marker != self.marker:
            raise MborError(f"expected u{8 * self.width} marker 0x{self.marker:02X}, got 0x{marker:02X}")
        return value

    def py_type(self) -> str:
        return "int"


class Bool(MborType):
    def encode(self, out: bytearray, value: Any) -> None:
        if not isinstance(value, bool):
            raise MborError(f"{value!r} is not a bool")
        out.append(0x15 if value else 0x14)

    def decode(self, reader: Reader) -> bool:
        byte = reader.take(1)[0]
        if byte not in (0x14, 0x15):
            raise MborError(f"bad bool byte 0x{byte:02X}")
        return byte == 0x15

    def py_type(self) -> str:
        return "bool"


@dataclass(frozen=True)
class Fixed(MborType):
    """``[u8; N]``: marker 0x80, u16 length == N, never padded."""

    length: int

    def encode(self, out: bytearray, value: Any) -> None:
        if not isinstance(value, (bytes, bytearray)) or len(value) != self.length:
            raise MborError(f"fixed array needs exactly {self.length} bytes")
        out += b"\x80" + struct.pack(">H", self.length) + value

    def decode(self, reader: Reader) -> bytes:
        marker, length = struct.unpack(">BH", reader.take(3))
        if marker != 0x80 or length != self.length:
            raise MborError(f"fixed array: marker 0x{marker:02X} length {length}, expected {self.length}")
        return reader.take(length)

    def py_type(self) -> str:
        return "bytes"


@dataclass(frozen=True)
class Var(MborType):
    """``MborByteArray<N>``: marker 0x80|p, u16 length <= N, p zero pad bytes, data 4-aligned."""

    maximum: int

    def encode(self, out: bytearray, value: Any) -> None:
        if not isinstance(value, (bytes, bytearray)) or len(value) > self.maximum:
            raise MborError(f"byte array longer than {self.maximum}")
        pad = -(len(out) + 3) % 4
        out += bytes([0x80 | pad]) + struct.pack(">H", len(value)) + bytes(pad) + value

    def decode(self, reader: Reader) -> bytes:
        marker, length = struct.unpack(">BH", reader.take(3))
        if marker & ~3 != 0x80:
            raise MborError(f"bad byte-array marker 0x{marker:02X}")
        if length > self.maximum:
            raise MborError(f"byte array of {length} bytes exceeds {self.maximum}")
        if any(reader.take(marker & 3)):
            raise MborError("nonzero byte-array padding")
        return reader.take(length)

    def py_type(self) -> str:
        return "bytes"


U8, U16, U32, U64 = UInt(0x18, 1), UInt(0x19, 2), UInt(0x1A, 4), UInt(0x1B, 8)
BOOL = Bool()


@dataclass(frozen=True)
class Field:
    """One map entry of a struct. ``safe``: its value may appear in traces (default: redacted)."""

    id: int
    name: str
    type: MborType
    optional: bool = False
    safe: bool = False

    @property
    def key(self) -> bytes:
        """The encoded field id: ``18 id``."""
        return bytes((0x18, self.id))


class Struct(MborType):
    """A map of numbered fields; ``cls`` is the dataclass holding a decoded value."""

    cls: type

    def __init__(self, name: str, *fields: Field) -> None:
        ids = [f.id for f in fields]
        if ids and ids != list(range(ids[0], ids[0] + len(ids))):
            raise ValueError(f"{name}: field ids must be contiguous")
        self.name = name
        self.fields = fields
        self._keyed = [(f, f.key) for f in fields]
        self._names = [f.name for f in fields]
        cls = self._generated_class()
        if cls is None:
            spec = [(f.name, Any, dataclasses.field(default=None)) if f.optional else (f.name, Any)
                    for f in self.attribute_order()]
            cls = dataclasses.make_dataclass(name, spec, frozen=True)
        cls.SCHEMA = self  # type: ignore[attr-defined]  # the class attribute every message class has
        self.cls = cls

    def attribute_order(self) -> list[Field]:
        """The fields in the dataclass's attribute order: required ones first, then the optional ones
        (each group in declaration order), as a dataclass needs attributes without defaults first."""
        return sorted(self.fields, key=lambda f: f.optional)

    def annotations(self) -> dict[str, str]:
        """The dataclass's attribute annotations, as written in ``pyhsm.protocol.ddi.messages``."""
        return {f.name: f"{f.type.py_type()} | None" if f.optional else f.type.py_type()
                for f in self.attribute_order()}

    def _generated_class(self) -> type | None:
        """The generated class of this struct's name if it has exactly this struct's attributes and no
        other struct has claimed it; otherwise None (a stale messages.py or an ad-hoc struct)."""
        cls = getattr(_messages, self.name, None) if _messages is not None else None
        if not isinstance(cls, type) or not dataclasses.is_dataclass(cls) or "SCHEMA" in cls.__dict__:
            return None
        attrs = dataclasses.fields(cls)
        if ({a.name: a.type for a in attrs} != self.annotations()
                or [a.name for a in attrs] != [f.name for f in self.attribute_order()]
                or any((a.default is None) != f.optional for a, f in zip(attrs, self.attribute_order()))):
            return None
        return cls

    def py_type(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Struct({self.name})"

    def __call__(self, **values: Any) -> Any:
        return self.cls(**values)

    def encode(self, out: bytearray, value: Any) -> None:
        if not isinstance(value, self.cls):
            raise MborError(f"{self.name}: expected {self.cls.__name__}, got {type(value).__name__}")
        values = [getattr(value, name) for name in self._names]
        out.append(0xA0 | (len(values) - values.count(None)))
        for (f, key), v in zip(self._keyed, values):
            if v is None:
                if f.optional:
                    continue
                raise MborError(f"{self.name}.{f.name} is required")
            out += key
            f.type.encode(out, v)

    def decode(self, reader: Reader) -> Any:
        header = reader.take(1)[0]
        if header & 0xE0 != 0xA0:
            raise MborError(f"{self.name}: expected a map header, got 0x{header:02X}")
        remaining = header & 0x1F
        values: dict[str, Any] = {}
        for f, key in self._keyed:
            if f.optional and (remaining == 0 or not reader.next_is(key)):
                continue
            if remaining == 0:
                raise MborError(f"{self.name}: map ends before required field {f.name}")
            got = reader.take(2)
            if got != key:
                raise MborError(f"{self.name}: expected field id {f.id} ({f.name}), got {got.hex()}")
            values[f.name] = f.type.decode(reader)
            remaining -= 1
        if remaining:
            raise MborError(f"{self.name}: {remaining} unexpected extra fields")
        return self.cls(**values)


def encode(schema: MborType, value: Any) -> bytes:
    out = bytearray()
    schema.encode(out, value)
    return bytes(out)


def decode(schema: MborType, data: bytes) -> Any:
    """Decode exactly one value that must fill ``data`` completely."""
    reader = Reader(data)
    value = schema.decode(reader)
    if not reader.at_end():
        raise MborError(f"{len(data) - reader.pos} trailing bytes after {schema!r}")
    return value

