"""Certificate portions: the part of a stored chain or certificate one read request gets."""

from __future__ import annotations


class OutOfRange(LookupError):
    """A read offset at or past the end of the data."""


def portion(data: bytes, offset: int, length: int, room: int) -> bytes:
    """``data`` from ``offset``: at most ``length`` bytes and at most ``room``; ``OutOfRange`` unless
    ``offset`` lies inside ``data``."""
    if offset >= len(data):
        raise OutOfRange(f"offset {offset} of {len(data)} bytes")
    return data[offset:offset + min(length, room)]
