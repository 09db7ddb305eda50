"""Vendor-defined PCI messages (MCTP type 0x7E, vendor 0x1414): the wire declarations both sides use.

Contract: the Microsoft/Cerberus command and error codes, the field sizes, the record layouts of the
message header and of each command's request, and the builders of a message; no device state and no
keys. The requester (``pyhsm.client.i2c_transport``, tests) and the responder
(``pyhsm.backend.serialbus.vdm``) build and parse vendor-defined messages with these declarations only
(docs/serial-mailbox.md, "Vendor-defined PCI").

Message layout after the type byte: PCI vendor id (0x1414), a byte with Rq (bit 7) and Crypt (bit 5),
the command code, then the command's body (``VendorHeader``). Failures are answered with the Cerberus
ERROR message (command 0x7F, ``ErrorBody``: error code u8, error data u32).
"""

from __future__ import annotations

import enum

from pyhsm.protocol.serialbus.control import MSFT_VENDOR_ID, VENDOR_PCI_TYPE
from pyhsm.protocol.serialbus.record import Record

FW_VERSION_LEN = 32
MAX_BODY = 4096 - 5
RQ, CRYPT = 0x80, 0x20


class Command(enum.IntEnum):
    GET_FW_VERSION = 0x01
    GET_DEVICE_CAPABILITIES = 0x02
    GET_DEVICE_ID = 0x03
    GET_DEVICE_INFO = 0x04
    ERROR = 0x7F
    GET_DIGEST = 0x81
    GET_CERTIFICATE = 0x82
    ATTESTATION_CHALLENGE = 0x83
    RESET_COUNTER = 0x87
    MANAGEMENT_DDI = 0xC0


class ErrorCode(enum.IntEnum):
    INVALID_REQ = 0x01
    UNSPECIFIED = 0x04
    UNSUPPORTED = 0x7F   # error data: the command code


class VendorHeader(Record, layout=">BHBB"):
    """Every vendor-defined message: type byte, PCI vendor id (big endian), Rq/Crypt, command, body."""
    type: int
    vendor: int
    flags: int
    command: int
    rest: bytes = b""


class ErrorBody(Record, layout="<BI"):
    """The Cerberus ERROR message's body."""
    code: int
    data: int


class Area(Record, layout="<B"):
    index: int


class Capabilities(Record, layout="<HHBBB"):
    """Cerberus device capabilities: message and packet sizes, then 3 bytes of role and crypto bits."""
    max_message: int
    max_packet: int
    roles: int
    policy: int
    crypto: int


class DigestRequest(Record, layout="<BB"):
    slot: int
    key_alg: int


class CertificateRequest(Record, layout="<BBHH"):
    slot: int
    cert: int
    offset: int
    length: int


class ChallengeRequest(Record, layout="<Bx32s"):
    slot: int
    nonce: bytes


class CounterRequest(Record, layout="<BB"):
    kind: int
    port: int


def message(command: int, body: bytes, flags: int = 0) -> bytes:
    return VendorHeader(VENDOR_PCI_TYPE, MSFT_VENDOR_ID, flags, command, body).encode()


def request(command: int, body: bytes = b"") -> bytes:
    """A vendor-defined request message (type byte first), for requesters and tests."""
    return message(command, body, RQ)
