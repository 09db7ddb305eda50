"""MCTP control messages (DSP0236 section 12), the responder side.

The message layouts and codes are declared in ``pyhsm.protocol.serialbus.control``; this module holds
what the endpoint answers with (docs/serial-mailbox.md). Supported: Set Endpoint ID, Get Endpoint ID,
Get MCTP Version Support, Get Message Type Support, Get Vendor Defined Message Support.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyhsm.backend.serialbus.dispatch import Route
from pyhsm.protocol.serialbus.control import (
    MESSAGE_TYPE,
    MSFT_VENDOR_ID,
    SPDM_TYPE,
    VENDOR_PCI_TYPE,
    Command,
    Completion,
    ControlHeader,
    Selector,
    SetEid,
)
from pyhsm.protocol.serialbus.record import Empty, RecordError

SUPPORTED_TYPES = (MESSAGE_TYPE, SPDM_TYPE, VENDOR_PCI_TYPE)
# Version entries (major, minor, update, alpha; 0xF0 | n encodes n) per message type; 0xFF = base spec
VERSIONS: dict[int, tuple[bytes, ...]] = {
    0xFF: (bytes([0xF1, 0xF3, 0xF1, 0x00]),),          # DSP0236 1.3.1
    MESSAGE_TYPE: (bytes([0xF1, 0xF3, 0xF1, 0x00]),),
    SPDM_TYPE: (bytes([0xF1, 0xF2, 0xF0, 0x00]),),     # SPDM 1.2.0 over DSP0275
    VENDOR_PCI_TYPE: (bytes([0xF1, 0xF0, 0xFF, 0x00]),),
}
CERBERUS_PROTOCOL_VERSION = 0x0004


@dataclass
class EndpointId:
    """The endpoint's EID: 0 (unassigned) until a bus owner sets one; volatile."""

    value: int = 0


def _valid_eid(eid: int) -> bool:
    return 0x08 <= eid <= 0xFE


class _Failure(Exception):
    def __init__(self, code: Completion) -> None:
        self.code = code


def _set_eid(state: EndpointId, header: ControlHeader, data: SetEid) -> bytes:
    operation = data.operation & 3
    if operation in (0, 1):                      # set / force
        if not _valid_eid(data.eid):
            raise _Failure(Completion.INVALID_DATA)
        state.value = data.eid
    elif operation == 2:                         # reset: static EIDs only
        raise _Failure(Completion.INVALID_DATA)
    return bytes([0x00, state.value, 0x00])      # accepted, no EID pool; EID setting; pool size 0


def _get_eid(state: EndpointId, header: ControlHeader, data: Empty) -> bytes:
    return bytes([state.value, 0x00, 0x00])      # simple endpoint, dynamic EID; no medium info


def _get_version(state: EndpointId, header: ControlHeader, data: Selector) -> bytes:
    entries = VERSIONS.get(data.value)
    if entries is None:
        raise _Failure(Completion.MESSAGE_TYPE_UNSUPPORTED)
    return bytes([len(entries)]) + b"".join(entries)


def _get_types(state: EndpointId, header: ControlHeader, data: Empty) -> bytes:
    return bytes([len(SUPPORTED_TYPES), *SUPPORTED_TYPES])


def _get_vendor(state: EndpointId, header: ControlHeader, data: Selector) -> bytes:
    if data.value != 0:
        raise _Failure(Completion.INVALID_DATA)
    # next selector 0xFF (no more); PCI vendor id format; vendor id and command set version, big endian
    return bytes([0xFF, 0x00]) + struct.pack(">HH", MSFT_VENDOR_ID, CERBERUS_PROTOCOL_VERSION)


ROUTES: dict[int, Route[EndpointId, ControlHeader]] = {
    Command.SET_ENDPOINT_ID: Route(SetEid, _set_eid),
    Command.GET_ENDPOINT_ID: Route(Empty, _get_eid),
    Command.GET_VERSION_SUPPORT: Route(Selector, _get_version),
    Command.GET_MESSAGE_TYPE_SUPPORT: Route(Empty, _get_types),
    Command.GET_VENDOR_MESSAGE_SUPPORT: Route(Selector, _get_vendor),
}


def respond(state: EndpointId, body: bytes) -> bytes | None:
    """The response message (type byte first) to a control request ``body`` (type byte first); None for
    a control *response* or a header too short to answer (DSP0236: such messages are discarded).
    Data of the wrong length is answered with INVALID_LENGTH."""
    try:
        header = ControlHeader.decode(body)
    except RecordError:
        return None
    if not header.flags & 0x80:
        return None
    route = ROUTES.get(header.command)
    try:
        if route is None:
            raise _Failure(Completion.UNSUPPORTED_CMD)
        answer = bytes([Completion.SUCCESS]) + route.answer(state, header)
    except RecordError:
        answer = bytes([Completion.INVALID_LENGTH])
    except _Failure as failure:
        answer = bytes([failure.code])
    return ControlHeader(MESSAGE_TYPE, header.flags & 0x1F, header.command, answer).encode()
