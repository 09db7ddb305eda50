"""The DDI command envelope (docs/ddi.md, "Wire encoding"): ``A2 18 00 <header> 18 01 <data>``, no extension field.

The header and data are encoded into one buffer so that byte-array padding follows the absolute
message offset, as the device's own encoder does (docs/ddi.md, "Wire encoding").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pyhsm.protocol.ddi.mbor import MborError, Reader, Struct
from pyhsm.protocol.ddi.schemas import API_REV, EMPTY, REQ_HDR, RESP_HDR

_OPEN = b"\xA2\x18\x00"
_DATA = b"\x18\x01"


def _encode(header_schema: Struct, header: Any, data_schema: Struct, data: Any) -> bytes:
    out = bytearray(_OPEN)
    header_schema.encode(out, header)
    out += _DATA
    data_schema.encode(out, data)
    return bytes(out)


def _open(payload: bytes, header_schema: Struct) -> tuple[Any, Reader]:
    reader = Reader(payload)
    if reader.take(3) != _OPEN:
        raise MborError("envelope must start with a 2-entry map and field id 0")
    header = header_schema.decode(reader)
    if reader.take(2) != _DATA:
        raise MborError("envelope field id 1 (data) expected after the header")
    return header, reader


def _finish(reader: Reader, schema: Struct) -> Any:
    data = schema.decode(reader)
    if not reader.at_end():
        raise MborError("trailing bytes after the request data")
    return data


API_REV_MIN = (1, 0)   # the API revisions the device accepts in a request header (docs/ddi.md)
API_REV_MAX = (1, 0)


def rev(major: int, minor: int) -> Any:
    return API_REV(major=major, minor=minor)


def encode_request(op: int, schema: Struct, data: Any, *, rev: Any = None,
                   sess_id: int | None = None) -> bytes:
    return _encode(REQ_HDR, REQ_HDR(rev=rev, op=op, sess_id=sess_id), schema, data)


@dataclass
class OpenedRequest:
    """A request whose header decoded; ``data`` is decoded on demand with the op's schema."""

    header: Any
    reader: Reader

    def data(self, schema: Struct) -> Any:
        return _finish(self.reader, schema)


def open_request(payload: bytes) -> OpenedRequest:
    """Decode the envelope and header; raises ``MborError``. The header of a payload seen moments ago
    is not decoded again (the link server asks where a request runs before the partition executes it)."""
    header, data_offset = _request_header(payload)
    reader = Reader(payload)
    reader.pos = data_offset
    return OpenedRequest(header, reader)


@functools.lru_cache(maxsize=32)
def _request_header(payload: bytes) -> tuple[Any, int]:
    header, reader = _open(payload, REQ_HDR)
    return header, reader.pos


def encode_response(op: int, status: int, schema: Struct = EMPTY, data: Any = None, *,
                    rev: Any = None, sess_id: int | None = None, fips: bool = False) -> bytes:
    """A response; an error response (``status`` != 0) always carries the empty data map."""
    header = RESP_HDR(rev=rev, op=op, sess_id=sess_id, status=int(status), fips_approved=fips)
    if status:
        return _encode(RESP_HDR, header, EMPTY, EMPTY())
    return _encode(RESP_HDR, header, schema, schema() if data is None else data)


def decode_response(payload: bytes, schema: Struct) -> tuple[Any, Any]:
    """Client side: the header, then (only on success) the data; data is ``None`` on error."""
    header, reader = _open(payload, RESP_HDR)
    if header.status:
        return header, None
    return header, _finish(reader, schema)
