"""MBOR requests and responses to readable JSON, redacted by ``redaction`` (deny by default).

Decoding never raises. Only a message that decodes completely under its op's schema shows data: a
request of an unknown opcode, or whose data does not decode, shows its header (op, session id) and
why, never its bytes; a response that does not decode shows ``{"undecodable": reason, "bytes": n}``.
Every DDI and vendor op is known here (``schemas_vendor`` is imported for its ops).
"""

from __future__ import annotations

import contextlib
from typing import Any

from pyhsm.protocol.ddi import envelope, schemas_vendor
from pyhsm.protocol.ddi.mbor import MborError
from pyhsm.protocol.ddi.optable import OPS
from pyhsm.protocol.ddi.redaction import to_json
from pyhsm.protocol.ddi.status import DdiStatus


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
    """The name of a DDI or vendor status, else its hex value."""
    for names in (DdiStatus, schemas_vendor.VendorStatus):
        with contextlib.suppress(ValueError):
            return names(status).name
    return f"0x{status:x}"
