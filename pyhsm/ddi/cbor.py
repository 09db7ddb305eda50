"""The subset of CBOR (RFC 8949) the attestation report needs: minimal-length integers, byte and
text strings, arrays, maps and tags. Encoding only; maps keep the caller's key order."""

from __future__ import annotations

from typing import Any


def _head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for extra, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * width):
            return bytes([major << 5 | extra]) + value.to_bytes(width, "big")
    raise ValueError("integer too large for CBOR")


class Tagged:
    def __init__(self, tag: int, value: Any) -> None:
        self.tag, self.value = tag, value


def encode(value: Any) -> bytes:
    if isinstance(value, bool) or value is None:
        raise TypeError("bool/null are not used by the report")
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, (bytes, bytearray)):
        return _head(2, len(value)) + bytes(value)
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, list):
        return _head(4, len(value)) + b"".join(encode(v) for v in value)
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())
    if isinstance(value, Tagged):
        return _head(6, value.tag) + encode(value.value)
    raise TypeError(f"cannot encode {type(value).__name__}")
