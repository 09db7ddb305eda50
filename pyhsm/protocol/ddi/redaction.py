"""What a trace may show of a decoded DDI message: deny by default.

The declaration lives with the schemas (``pyhsm.protocol.ddi.schemas``, ``pyhsm.protocol.ddi.schemas_vendor``): a field
declared safe (``Field.safe``, written ``P(...)`` there) shows its value; every other field, whatever
its type, shows only its size as ``{"redacted": n}`` (n: the length of a byte string, else the size of
the value's MBOR encoding). A struct-typed field declared safe shows its own fields under their own
declarations. Messages that do not decode are never shown (``pyhsm.protocol.ddi.decode``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pyhsm.protocol.ddi import mbor


def to_json(value: Any) -> Any:
    """A decoded MBOR value as JSON: structs become objects with their unsafe fields redacted,
    byte strings become hex, integers and booleans stay."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        struct: mbor.Struct = type(value).SCHEMA  # type: ignore[attr-defined]
        out = {}
        for f in struct.fields:
            item = getattr(value, f.name)
            if item is not None:
                out[f.name] = to_json(item) if f.safe else redacted(f, item)
        return out
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value


def redacted(field: mbor.Field, value: Any) -> dict[str, int]:
    """The placeholder shown for an unsafe field: its size only."""
    if isinstance(value, (bytes, bytearray)):
        return {"redacted": len(value)}
    return {"redacted": len(mbor.encode(field.type, value))}
