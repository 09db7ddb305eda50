"""MCTP control messages (DSP0236 section 12): the wire declarations both sides use.

Contract: message type codes, command and completion codes and the record layouts of MCTP control,
nothing else; the requester (``pyhsm.client.serialbus.requester``) and the responder
(``pyhsm.backend.serialbus.control``) build and parse control messages with these declarations only
(docs/serial-mailbox.md, "MCTP control").

Message type 0x00. After the type byte: byte 0 = Rq (bit 7), D (bit 6), instance id (bits 4:0); byte 1 =
command code; a response adds a completion code.
"""

from __future__ import annotations

import enum

from pyhsm.protocol.serialbus.record import Record

MESSAGE_TYPE = 0x00
SPDM_TYPE = 0x05
VENDOR_PCI_TYPE = 0x7E
MSFT_VENDOR_ID = 0x1414


class Command(enum.IntEnum):
    SET_ENDPOINT_ID = 0x01
    GET_ENDPOINT_ID = 0x02
    GET_VERSION_SUPPORT = 0x04
    GET_MESSAGE_TYPE_SUPPORT = 0x05
    GET_VENDOR_MESSAGE_SUPPORT = 0x06


class Completion(enum.IntEnum):
    SUCCESS = 0x00
    ERROR = 0x01
    INVALID_DATA = 0x02
    INVALID_LENGTH = 0x03
    NOT_READY = 0x04
    UNSUPPORTED_CMD = 0x05
    MESSAGE_TYPE_UNSUPPORTED = 0x80   # Get MCTP Version Support only


class ControlHeader(Record, layout="<BBB"):
    """A control message: type byte, Rq/D/instance id, command code, then the data."""
    type: int
    flags: int
    command: int
    rest: bytes = b""


class SetEid(Record, layout="<BB"):
    operation: int
    eid: int


class Selector(Record, layout="<B"):
    """The one-byte data of Get MCTP Version Support (message type) and Get Vendor Defined Message
    Support (vendor id selector)."""
    value: int
