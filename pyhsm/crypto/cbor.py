"""Minimal strict CBOR (RFC 8949) for COSE_Sign1 reports and statements: definite lengths, deterministic encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class CborError(ValueError):
    """Malformed or unsupported CBOR."""


@dataclass(frozen=True)
class Tag:
    number: int
    value: Any


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | extra]) + value.to_bytes(size, "big")
    raise CborError("integer too large")


def encode(obj: Any) -> bytes:
    """Deterministic encoding of int, bytes, str, list, dict (in insertion order), bool and Tag."""
    if isinstance(obj, bool):
        return b"\xf5" if obj else b"\xf4"
    if isinstance(obj, int):
        return _head(0, obj) if obj >= 0 else _head(1, -1 - obj)
    if isinstance(obj, (bytes, bytearray)):
        return _head(2, len(obj)) + bytes(obj)
    if isinstance(obj, str):
        raw = obj.encode()
        return _head(3, len(raw)) + raw
    if isinstance(obj, (list, tuple)):
        return _head(4, len(obj)) + b"".join(encode(v) for v in obj)
    if isinstance(obj, dict):
        return _head(5, len(obj)) + b"".join(encode(k) + encode(v) for k, v in obj.items())
    if isinstance(obj, Tag):
        return _head(6, obj.number) + encode(obj.value)
    raise CborError(f"cannot encode {type(obj).__name__}")


def decode(data: bytes) -> Any:
    """The single item in ``data``; CborError if anything is malformed or trails it."""
    value, end = _item(data, 0, depth=0)
    if end != len(data):
        raise CborError(f"{len(data) - end} trailing bytes")
    return value


def _item(data: bytes, pos: int, depth: int) -> tuple[Any, int]:
    if depth > 16:
        raise CborError("nesting too deep")
    if pos >= len(data):
        raise CborError("truncated")
    major, info = data[pos] >> 5, data[pos] & 31
    pos += 1
    if info < 24:
        arg = info
    elif info <= 27:
        size = 1 << (info - 24)
        if pos + size > len(data):
            raise CborError("truncated argument")
        arg = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    else:
        raise CborError("indefinite lengths and reserved values are not supported")
    if major == 0:
        return arg, pos
    if major == 1:
        return -1 - arg, pos
    if major in (2, 3):
        if pos + arg > len(data):
            raise CborError("truncated string")
        raw = data[pos:pos + arg]
        try:
            return (bytes(raw) if major == 2 else raw.decode()), pos + arg
        except UnicodeDecodeError:
            raise CborError("invalid UTF-8 text") from None
    if major == 4:
        items = []
        for _ in range(arg):
            v, pos = _item(data, pos, depth + 1)
            items.append(v)
        return items, pos
    if major == 5:
        out: dict = {}
        for _ in range(arg):
            k, pos = _item(data, pos, depth + 1)
            v, pos = _item(data, pos, depth + 1)
            if not isinstance(k, (int, str)) or k in out:
                raise CborError("map keys must be unique integers or text")
            out[k] = v
        return out, pos
    if major == 6:
        v, pos = _item(data, pos, depth + 1)
        return Tag(arg, v), pos
    if info in (20, 21):
        return info == 21, pos
    raise CborError("unsupported simple value or float")
