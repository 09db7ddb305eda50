"""Sample DDI values built from the schemas: every field filled, byte fields not declared safe with a
marker pattern that must never show up in a trace."""

from __future__ import annotations

from typing import Any

from pyhsm.protocol.ddi.mbor import BOOL, Fixed, Struct, UInt, Var

SECRET_MARK = bytes.fromhex("5ec2e75ec2e7")   # repeated to fill secret byte fields
PLAIN_MARK = bytes.fromhex("b1a1b1a1")


def sample(struct: Struct) -> Any:
    """A value of ``struct`` with every field (optional ones too) set."""
    values = {}
    for f in struct.fields:
        secret = not f.safe
        if isinstance(f.type, Struct):
            values[f.name] = sample(f.type)
        elif isinstance(f.type, UInt):
            values[f.name] = 1
        elif f.type is BOOL:
            values[f.name] = False
        elif isinstance(f.type, Fixed):
            values[f.name] = _fill(SECRET_MARK if secret else PLAIN_MARK, f.type.length)
        elif isinstance(f.type, Var):
            values[f.name] = _fill(SECRET_MARK if secret else PLAIN_MARK, min(f.type.maximum, 24))
    return struct(**values)


def _fill(mark: bytes, length: int) -> bytes:
    return (mark * (length // len(mark) + 1))[:length]
