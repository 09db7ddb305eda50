"""The DDI command envelope (docs/ddi.md, "Wire encoding"): ``A2 18 00 <header> 18 01 <data>``, no extension field.

The header and data are encoded into one buffer so that byte-array padding follows the absolute
message offset, as the device's own encoder does (docs/ddi.md, "Wire encoding").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyhsm.protocol.ddi.mbor import MborError, Struct
from pyhsm.protocol.ddi.schemas import API_REV, EMPTY, REQ_HDR, RESP_HDR

_OPEN = b"\xA2\x18\x00"
_DATA = b"\x18\x01"


def _encode(header_schema: Struct, header: Any, data_schema: Struct, data: Any) -> bytes:
    out = bytearray(_OPEN)
    header_schema.encode(out, header)
    out += _DATA
    data_schema.encode(out, data)
    return bytes(out)


def _open(payload: bytes, header_schema: Struct) -> tuple[Any, int]:
    """The header and the offset of the data."""
    if payload[:3] != _OPEN:
        raise MborError("envelope must start with a 2-entry map and field id 0")
    header, pos = header_schema.decode_from(payload, 3)
    if payload[pos:pos + 2] != _DATA:
        raise MborError("envelope field id 1 (data) expected after the header")
    return header, pos + 2


def _finish(payload: bytes, pos: int, schema: Struct) -> Any:
    data, end = schema.decode_from(payload, pos)
    if end != len(payload):
        raise MborError("trailing bytes after the request data")
    return data


API_REV_MIN = (1, 0)   # the API revisions the device accepts in a request header (docs/ddi.md)
API_REV_MAX = (1, 0)


def rev(major: int, minor: int) -> Any:
    return API_REV.cls(major, minor)


def encode_request(op: int, schema: Struct, data: Any, *, rev: Any = None,
                   sess_id: int | None = None) -> bytes:
    return _encode(REQ_HDR, REQ_HDR.cls(op, rev, sess_id), schema, data)


@dataclass
class OpenedRequest:
    """A request whose header decoded; ``data`` is decoded on demand with the op's schema."""

    header: Any
    payload: bytes
    data_offset: int

    def data(self, schema: Struct) -> Any:
        return _finish(self.payload, self.data_offset, schema)


def open_request(payload: bytes) -> OpenedRequest:
    """Decode the envelope and header; raises ``MborError``. The very payload object opened last is
    not decoded again (the link server asks where a request runs before the partition executes it)."""
    global _last_opened
    last = _last_opened
    if last is not None and last.payload is payload:
        return last
    payload = bytes(payload)
    header, pos = _open(payload, REQ_HDR)
    _last_opened = OpenedRequest(header, payload, pos)
    return _last_opened


_last_opened: OpenedRequest | None = None   # holds its payload, so no other object can have its identity


def encode_response(op: int, status: int, schema: Struct = EMPTY, data: Any = None, *,
                    rev: Any = None, sess_id: int | None = None, fips: bool = False) -> bytes:
    """A response; an error response (``status`` != 0) always carries the empty data map."""
    header = RESP_HDR.cls(op, int(status), fips, rev, sess_id)
    if status:
        return _encode(RESP_HDR, header, EMPTY, _NOTHING)
    return _encode(RESP_HDR, header, schema, schema() if data is None else data)


_NOTHING = EMPTY()


def response_header(payload: bytes) -> Any:
    """The header of a response, its data left undecoded; raises ``MborError``."""
    return _open(bytes(payload), RESP_HDR)[0]


def decode_response(payload: bytes, schema: Struct) -> tuple[Any, Any]:
    """Client side: the header, then (only on success) the data; data is ``None`` on error."""
    payload = bytes(payload)
    header, pos = _open(payload, RESP_HDR)
    if header.status:
        return header, None
    return header, _finish(payload, pos, schema)
