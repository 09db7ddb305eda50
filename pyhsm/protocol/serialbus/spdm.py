"""SPDM 1.2 messages (DSP0274 1.2.x) over MCTP (DSP0275): the wire declarations both sides use.

Contract: request and response codes, error codes, the algorithm and size constants, the record
layouts of the message bodies, measurement blocks and the signing prefix and contexts of DSP0274 1.2
section 15; no connection state and no keys. The requester (``pyhsm.client.serialbus.requester``) and
the responder (``pyhsm.backend.serialbus.spdm``) build and parse SPDM messages with these declarations
only (docs/serial-mailbox.md, "SPDM 1.2").
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from pyhsm.protocol.serialbus.record import Record

VERSION_10 = 0x10
VERSION_12 = 0x12
HASH_SIZE = 48
SIGNATURE_SIZE = 96
NONCE_SIZE = 32
MIN_DATA_TRANSFER = 42
DATA_TRANSFER_SIZE = 4096     # our largest message: nothing is chunked
ASYM_ECDSA_P384 = 1 << 7
HASH_SHA384 = 1 << 1
MEAS_HASH_SHA384 = 1 << 2
MEAS_SPEC_DMTF = 1


class Code(enum.IntEnum):
    DIGESTS = 0x01
    CERTIFICATE = 0x02
    CHALLENGE_AUTH = 0x03
    VERSION = 0x04
    MEASUREMENTS = 0x60
    CAPABILITIES = 0x61
    ALGORITHMS = 0x63
    ERROR = 0x7F
    GET_DIGESTS = 0x81
    GET_CERTIFICATE = 0x82
    CHALLENGE = 0x83
    GET_VERSION = 0x84
    GET_MEASUREMENTS = 0xE0
    GET_CAPABILITIES = 0xE1
    NEGOTIATE_ALGORITHMS = 0xE3


class ErrorCode(enum.IntEnum):
    INVALID_REQUEST = 0x01
    UNEXPECTED_REQUEST = 0x04
    UNSPECIFIED = 0x05
    UNSUPPORTED_REQUEST = 0x07
    RESPONSE_TOO_LARGE = 0x0D
    VERSION_MISMATCH = 0x41


class Header(Record, layout="<BBBB"):
    """Every SPDM message: version, code, two parameters, then the body."""
    version: int
    code: int
    param1: int
    param2: int
    rest: bytes = b""


def message(code: Code, param1: int = 0, param2: int = 0, body: bytes = b"", version: int = VERSION_12) -> bytes:
    """The SPDM message ``code`` with ``body`` after its header."""
    return Header(version, code, param1, param2, body).encode()


class VersionEntries(Record, layout="<xB"):
    """VERSION body: the number of version entries, then the entries (u16 each)."""
    count: int
    rest: bytes = b""


class Capabilities(Record, layout="<xBxxIII"):
    """GET_CAPABILITIES and CAPABILITIES body (SPDM 1.2)."""
    ct_exponent: int
    flags: int
    data_transfer_size: int
    max_message_size: int


class Algorithms(Record, layout="<HBBII12xBBxx"):
    """NEGOTIATE_ALGORITHMS body up to the extended and structured tables (``rest``)."""
    length: int
    measurement_spec: int
    other_params: int
    base_asym: int
    base_hash: int
    ext_asym_count: int
    ext_hash_count: int
    rest: bytes = b""


class AlgorithmsResponse(Record, layout="<HBBIII12xBBxx"):
    """ALGORITHMS body: as NEGOTIATE_ALGORITHMS's, with the measurement hash selected after the other
    parameters."""
    length: int
    measurement_spec: int
    other_params: int
    measurement_hash: int
    base_asym: int
    base_hash: int
    ext_asym_count: int
    ext_hash_count: int
    rest: bytes = b""


class GetCertificate(Record, layout="<HH"):
    offset: int
    length: int


class CertificatePortion(Record, layout="<HH"):
    """CERTIFICATE body: portion length, remainder length, then the portion."""
    portion_length: int
    remainder_length: int
    rest: bytes = b""


class Challenge(Record, layout="<32s"):
    nonce: bytes


class GetMeasurements(Record, layout="<32sB"):
    """Body when a signature is requested (param1 bit 0); without one the body is empty."""
    nonce: bytes
    slot: int


@dataclass(frozen=True)
class Measurement:
    """One measurement block: ``index`` 1..0xFE, DMTF value ``kind`` (0 immutable ROM, 1 mutable
    firmware, ...), and a SHA-384 ``digest``."""
    index: int
    kind: int
    digest: bytes

    def block(self) -> bytes:
        value = struct.pack("<BH", self.kind, len(self.digest)) + self.digest
        return struct.pack("<BBH", self.index, MEAS_SPEC_DMTF, len(value)) + value


def sign_prefix(context: bytes) -> bytes:
    """The 100-byte combined SPDM prefix of DSP0274 1.2 for a signing ``context``."""
    return b"dmtf-spdm-v1.2.*" * 4 + bytes(36 - len(context)) + context


CHALLENGE_CONTEXT = b"responder-challenge_auth signing"
MEASUREMENTS_CONTEXT = b"responder-measurements signing"
