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

Two codecs, one behaviour: each type's ``encode``/``decode`` is the reference, which reports precisely
what is wrong. A struct is also compiled, on first use, into one straight-line encode and decode
function (each type writes its own lines: ``encode_lines``/``decode_lines``), which accepts only
well-formed input and hands anything else to the reference (``_Fallback``); so a bad message costs a
second pass and gets the reference's error, and a good one costs a fraction of the reference
(docs/benchmarks.md, "Per-command cost of the backend").
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


class _Fallback(Exception):
    """Raised by compiled code at anything but the plain well-formed case: the reference decides."""


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


class MborType:
    """One value type of the encoding."""

    def encode(self, out: bytearray, value: Any) -> None:
        raise NotImplementedError

    def decode(self, reader: Reader) -> Any:
        raise NotImplementedError

    def py_type(self) -> str:
        """The Python type of a decoded value, as written in ``pyhsm.protocol.ddi.messages``."""
        raise NotImplementedError

    def encode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        """Compiled encoding: lines that append value ``v`` to ``out`` or raise (any exception sends the
        whole message to the reference). Constants the lines use go into ``ns`` under fresh names."""
        raise NotImplementedError

    def decode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        """Compiled decoding: lines that read ``data`` (bytes) at ``pos`` into variable ``v`` and advance
        ``pos``, or raise on anything the reference might refuse."""
        raise NotImplementedError


def _const(ns: dict[str, Any], value: Any) -> str:
    """A fresh name for ``value`` in the compiled code's namespace."""
    name = f"_c{len(ns)}"
    ns[name] = value
    return name


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

    def encode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        pack = _const(ns, self._layout.pack)
        return [f"if {v}.__class__ is not int and ({v}.__class__ is bool or not isinstance({v}, int)): raise _Fallback",
                f"out += {pack}({self.marker}, {v})"]

    def decode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        unpack = _const(ns, self._layout.unpack_from)
        return [f"_m, {v} = {unpack}(data, pos)",
                f"if _m != {self.marker}: raise _Fallback",
                f"pos += {self._layout.size}"]


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

    def encode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        return [f"if {v} is True: out.append(0x15)",
                f"elif {v} is False: out.append(0x14)",
                "else: raise _Fallback"]

    def decode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        return ["_m = data[pos]", "pos += 1",
                f"if _m == 0x15: {v} = True",
                f"elif _m == 0x14: {v} = False",
                "else: raise _Fallback"]


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

    def _prefix(self) -> bytes:
        return b"\x80" + struct.pack(">H", self.length)

    def encode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        prefix = _const(ns, self._prefix())
        return [f"if not isinstance({v}, (bytes, bytearray)) or len({v}) != {self.length}: raise _Fallback",
                f"out += {prefix}", f"out += {v}"]

    def decode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        prefix = _const(ns, self._prefix())
        return [f"if data[pos:pos + 3] != {prefix}: raise _Fallback",
                f"{v} = data[pos + 3:pos + {3 + self.length}]",
                f"pos += {3 + self.length}",
                "if pos > len(data): raise _Fallback"]


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

    def encode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        head, zeros = _const(ns, _BYTE_ARRAY_HEAD.pack), _const(ns, _ZEROS)
        return [f"if not isinstance({v}, (bytes, bytearray)) or len({v}) > {self.maximum}: raise _Fallback",
                "_p = -(len(out) + 3) % 4",
                f"out += {head}(0x80 | _p, len({v}))", f"out += {zeros}[_p]", f"out += {v}"]

    def decode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        head = _const(ns, _BYTE_ARRAY_HEAD.unpack_from)
        return [f"_m, _n = {head}(data, pos)",
                f"if _m & 0xFC != 0x80 or _n > {self.maximum}: raise _Fallback",
                "_s = pos + 3 + (_m & 3)",
                "if _s != pos + 3 and any(data[pos + 3:_s]): raise _Fallback",
                "pos = _s + _n", f"{v} = data[_s:pos]",
                "if pos > len(data): raise _Fallback"]


_BYTE_ARRAY_HEAD = struct.Struct(">BH")
_ZEROS = (b"", b"\0", b"\0\0", b"\0\0\0")


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
        start = len(out)
        try:
            (self._encoder or self._compile_encoder())(out, value)
            return
        except Exception:  # not the plain case: the reference encodes it or says what is wrong
            del out[start:]
        self._reference_encode(out, value)

    def decode(self, reader: Reader) -> Any:
        value, reader.pos = self.decode_from(bytes(reader.data), reader.pos)
        return value

    def decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        """The value encoded at ``data[pos:]`` and the offset after it. Raises ``MborError``."""
        try:
            return (self._decoder or self._compile_decoder())(data, pos)
        except Exception:  # not the plain case: the reference decodes it or says what is wrong
            pass
        reader = Reader(data)
        reader.pos = pos
        value = self._reference_decode(reader)
        return value, reader.pos

    def encode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        return [f"{_const(ns, self._encoder or self._compile_encoder())}(out, {v})"]

    def decode_lines(self, v: str, ns: dict[str, Any]) -> list[str]:
        return [f"{v}, pos = {_const(ns, self._decoder or self._compile_decoder())}(data, pos)"]

    _encoder: Any = None
    _decoder: Any = None

    def _compile_encoder(self) -> Any:
        ns: dict[str, Any] = {"_Fallback": _Fallback, "_cls": self.cls}
        names = [f"v{i}" for i in range(len(self.fields))]
        optional = [n for n, f in zip(names, self.fields) if f.optional]
        count = " + ".join([str(len(self.fields) - len(optional))] + [f"({n} is not None)" for n in optional])
        body = ["if value.__class__ is not _cls: raise _Fallback"]
        body += [f"{n} = value.{f.name}" for n, f in zip(names, self.fields)]
        body.append(f"out.append(0xA0 | ({count}))")
        for n, f in zip(names, self.fields):
            lines = [f"out += {_const(ns, f.key)}"] + f.type.encode_lines(n, ns)
            if f.optional:
                body += [f"if {n} is not None:"] + ["    " + line for line in lines]
            else:
                body += [f"if {n} is None: raise _Fallback"] + lines
        self._encoder = _function("encode", "out, value", body, ns)
        return self._encoder

    def _compile_decoder(self) -> Any:
        ns: dict[str, Any] = {"_Fallback": _Fallback, "_cls": self.cls}
        names = {f.name: f"v{i}" for i, f in enumerate(self.fields)}
        body = ["_h = data[pos]", "if _h & 0xE0 != 0xA0: raise _Fallback", "rem = _h & 0x1F", "pos += 1"]
        for f in self.fields:
            v, key = names[f.name], _const(ns, f.key)
            lines = ["pos += 2", "rem -= 1"] + f.type.decode_lines(v, ns)
            if f.optional:
                body += [f"{v} = None", f"if rem and data[pos:pos + 2] == {key}:"] + ["    " + line for line in lines]
            else:
                body += [f"if not rem or data[pos:pos + 2] != {key}: raise _Fallback"] + lines
        body += ["if rem: raise _Fallback",
                 f"return _cls({', '.join(names[f.name] for f in self.attribute_order())}), pos"]
        self._decoder = _function("decode", "data, pos", body, ns)
        return self._decoder

    def _reference_encode(self, out: bytearray, value: Any) -> None:
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

    def _reference_decode(self, reader: Reader) -> Any:
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


def _function(name: str, args: str, body: list[str], ns: dict[str, Any]) -> Any:
    """Compile ``def name(args): body`` in namespace ``ns``."""
    exec("\n".join([f"def {name}({args}):"] + ["    " + line for line in body]), ns)
    return ns[name]


def encode(schema: MborType, value: Any) -> bytes:
    out = bytearray()
    schema.encode(out, value)
    return bytes(out)


def decode(schema: Struct, data: bytes) -> Any:
    """Decode exactly one value that must fill ``data`` completely."""
    data = bytes(data)
    value, end = schema.decode_from(data, 0)
    if end != len(data):
        raise MborError(f"{len(data) - end} trailing bytes after {schema!r}")
    return value

