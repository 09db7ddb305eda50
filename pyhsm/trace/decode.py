"""MBOR requests and responses to readable JSON, with the secret fields of ``redaction`` hidden.

Decoding never raises: bytes that do not decode become ``{"undecodable": reason, "bytes": n}``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pyhsm.ddi import envelope
from pyhsm.ddi.mbor import MborError, Struct
from pyhsm.ddi.schemas import OPS
from pyhsm.ddi.status import DdiStatus
from pyhsm.trace.redaction import is_secret


def to_json(value: Any, schema: Struct | None = None) -> Any:
    """A decoded MBOR value as JSON: structs become objects, bytes hex, secrets ``{"redacted": n}``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        struct: Struct = type(value).SCHEMA  # type: ignore[attr-defined]
        out = {}
        for f in struct.fields:
            item = getattr(value, f.name)
            if item is None:
                continue
            if is_secret(struct.name, f.name):
                out[f.name] = {"redacted": _length(item)}
            else:
                out[f.name] = to_json(item)
        return out
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return value


def _length(value: Any) -> int:
    return len(value) if isinstance(value, (bytes, bytearray)) else 0


def op_name(code: int) -> str:
    spec = OPS.get(code)
    return spec.name if spec else f"op{code}"


def decode_request(payload: bytes) -> dict[str, Any]:
    """``{"op": name, "opcode": n, "sess_id": .., "data": {...}}`` or an ``undecodable`` note."""
    try:
        opened = envelope.open_request(payload)
    except MborError as exc:
        return {"undecodable": str(exc), "bytes": len(payload)}
    code = opened.header.op
    out: dict[str, Any] = {"op": op_name(code), "opcode": code}
    if opened.header.sess_id is not None:
        out["sess_id"] = opened.header.sess_id
    spec = OPS.get(code)
    if spec is None:
        out["undecodable"] = "unknown opcode"
        return out
    try:
        out["data"] = to_json(opened.data(spec.request))
    except MborError as exc:
        out["undecodable"] = str(exc)
    return out


def decode_response(payload: bytes, opcode: int | None) -> dict[str, Any]:
    """``{"ddi_status": name, "data": {...}}``; ``opcode`` picks the schema (the request's op)."""
    if not payload:
        return {}
    spec = OPS.get(opcode) if opcode is not None else None
    if spec is None:
        return {"undecodable": "request op unknown", "bytes": len(payload)}
    try:
        header, data = envelope.decode_response(payload, spec.response)
    except MborError as exc:
        return {"undecodable": str(exc), "bytes": len(payload)}
    out: dict[str, Any] = {"ddi_status": status_name(header.status)}
    if header.sess_id is not None:
        out["sess_id"] = header.sess_id
    if data is not None:
        out["data"] = to_json(data)
    return out


def status_name(status: int) -> str:
    try:
        return DdiStatus(status).name
    except ValueError:
        return f"0x{status:x}"
