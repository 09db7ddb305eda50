"""Vendor-defined PCI messages (MCTP type 0x7E, vendor 0x1414): the Microsoft/Cerberus command set the
HSM firmware answers on its serial side, and management DDI (MBOR) requests.

Message layout after the type byte: PCI vendor id (0x1414), a byte with Rq (bit 7) and Crypt (bit 5),
the command code, then the command's body. Every command is declared once in ``COMMANDS`` with its
request record. Failures are answered with the Cerberus ERROR message (command 0x7F: error code u8,
error data u32); encrypted requests are refused (no sessions on this endpoint).

Management DDI (command 0xC0, our own code outside Cerberus's set): the body is an MBOR DDI request and
the answer an MBOR DDI response. Only GetApiRev, GetDeviceInfo, GetCertChainInfo and GetCertificate
run, with the device's identity and no vault: the serial endpoint cannot reach any partition's keys.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.ddi import ops  # noqa: F401  (registers the DDI handlers)
from pyhsm.ddi import physical
from pyhsm.ddi.call import HANDLERS, Call
from pyhsm.ddi.envelope import encode_response, open_request
from pyhsm.ddi.errors import DdiFailure
from pyhsm.ddi.mbor import MborError
from pyhsm.ddi.ops.info import API_REV_MAX, API_REV_MIN
from pyhsm.ddi.schemas import OP_INVALID, OPS
from pyhsm.ddi.status import DdiStatus
from pyhsm.ddi.types import DeviceKind
from pyhsm.identity import DeviceIdentity
from pyhsm.rot import der
from pyhsm.serialbus.control import MSFT_VENDOR_ID, VENDOR_PCI_TYPE
from pyhsm.serialbus.record import Record, RecordError

PCI_IDS = (0x1414, 0xC003, 0x1414, 0xC003)   # vendor, device, subsystem vendor, subsystem
FW_VERSION_LEN = 32
MAX_BODY = 4096 - 5
MANAGEMENT_DDI_OPS = frozenset({"GetApiRev", "GetDeviceInfo", "GetCertChainInfo", "GetCertificate"})
_RQ, _CRYPT = 0x80, 0x20


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


class Refused(Exception):
    def __init__(self, code: ErrorCode, data: int = 0) -> None:
        super().__init__(code.name)
        self.code, self.data = code, data


@dataclass(frozen=True)
class Empty(Record):
    LAYOUT: ClassVar = struct.Struct("")


@dataclass(frozen=True)
class Area(Record):
    LAYOUT: ClassVar = struct.Struct("<B")
    index: int


@dataclass(frozen=True)
class Capabilities(Record):
    """Cerberus device capabilities: message and packet sizes, then 3 bytes of role and crypto bits."""
    LAYOUT: ClassVar = struct.Struct("<HHBBB")
    max_message: int
    max_packet: int
    roles: int
    policy: int
    crypto: int


@dataclass(frozen=True)
class DigestRequest(Record):
    LAYOUT: ClassVar = struct.Struct("<BB")
    slot: int
    key_alg: int


@dataclass(frozen=True)
class CertificateRequest(Record):
    LAYOUT: ClassVar = struct.Struct("<BBHH")
    slot: int
    cert: int
    offset: int
    length: int


@dataclass(frozen=True)
class ChallengeRequest(Record):
    LAYOUT: ClassVar = struct.Struct("<Bx32s")
    slot: int
    nonce: bytes


@dataclass(frozen=True)
class CounterRequest(Record):
    LAYOUT: ClassVar = struct.Struct("<BB")
    kind: int
    port: int


@dataclass(frozen=True)
class DdiRequest(Record):
    LAYOUT: ClassVar = struct.Struct("")
    HAS_REST: ClassVar = True
    rest: bytes = b""


# Our capabilities: 4096-byte messages, 247-byte packets; slave bus role, AC-RoT; ECDSA with ECC-384
OUR_CAPABILITIES = Capabilities(4096, 247, 1 << 4 | 1 << 6, 0, 1 << 6 | 1 << 4)
MAX_TIMEOUT_10MS, MAX_CRYPTO_100MS = 10, 10


class Management:
    """The vendor-defined message handler of one device's serial endpoint."""

    def __init__(self, identity: DeviceIdentity, kind: DeviceKind) -> None:
        self._identity = identity
        self._kind = kind
        self._chain = list(identity.certificate_chain())
        self.device_resets = 0

    def __call__(self, body: bytes) -> bytes | None:
        """The response message (type byte first) to a request ``body``; None if it is not a request."""
        if len(body) < 5 or struct.unpack_from(">H", body, 1)[0] != MSFT_VENDOR_ID or not body[3] & _RQ:
            return None
        command = body[4]
        try:
            if body[3] & _CRYPT:
                raise Refused(ErrorCode.INVALID_REQ, command)
            spec = COMMANDS.get(command)
            if spec is None:
                raise Refused(ErrorCode.UNSUPPORTED, command)
            request_type, handler = spec
            answer = handler(self, request_type.decode(body[5:]), body)
        except RecordError:
            return _message(Command.ERROR, struct.pack("<BI", ErrorCode.INVALID_REQ, command))
        except Refused as refusal:
            return _message(Command.ERROR, struct.pack("<BI", refusal.code, refusal.data))
        return _message(command, answer)

    def _fw_version(self, req: Area, raw: bytes) -> bytes:
        stages = sorted(getattr(self._identity, "stages", ()), key=lambda s: -s.layer)  # active first
        if req.index >= len(stages):
            raise Refused(ErrorCode.INVALID_REQ, req.index)
        return stages[req.index].version.encode()[:FW_VERSION_LEN].ljust(FW_VERSION_LEN, b"\0")

    def _capabilities(self, req: Capabilities, raw: bytes) -> bytes:
        return OUR_CAPABILITIES.encode() + bytes([MAX_TIMEOUT_10MS, MAX_CRYPTO_100MS])

    def _device_id(self, req: Empty, raw: bytes) -> bytes:
        return struct.pack("<4H", *PCI_IDS)

    def _device_info(self, req: Area, raw: bytes) -> bytes:
        if req.index != 0:                 # 0: the unique chip identifier (the DICE UEID)
            raise Refused(ErrorCode.INVALID_REQ, req.index)
        cert = x509.load_der_x509_certificate(self._chain[0])
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(der.OID_TCG_DICE_UEID))
        return der.decode_ueid(ext.value.value)

    def _digest(self, req: DigestRequest, raw: bytes) -> bytes:
        if req.slot != 0 or req.key_alg != 0:
            raise Refused(ErrorCode.INVALID_REQ, req.slot)
        return bytes([0x01, len(self._chain)]) + b"".join(hashlib.sha256(c).digest() for c in self._chain)

    def _certificate(self, req: CertificateRequest, raw: bytes) -> bytes:
        if req.slot != 0 or req.cert >= len(self._chain) or req.offset >= len(self._chain[req.cert]):
            raise Refused(ErrorCode.INVALID_REQ, req.cert)
        length = req.length or MAX_BODY
        return bytes([req.slot, req.cert]) + self._chain[req.cert][req.offset:req.offset + min(length, MAX_BODY - 2)]

    def _challenge(self, req: ChallengeRequest, raw: bytes) -> bytes:
        if req.slot != 0:
            raise Refused(ErrorCode.INVALID_REQ, req.slot)
        pmr0 = bytes(48)
        for stage in sorted(getattr(self._identity, "stages", ()), key=lambda s: s.layer):
            pmr0 = hashlib.sha384(pmr0 + stage.measurement).digest()
        nonce = hashlib.sha256(req.nonce + pmr0).digest()      # fresh per challenge, bound to the request
        body = struct.pack("<BBBBH", 0, 0x01, 1, 1, 0) + nonce + bytes([1, len(pmr0)]) + pmr0
        signed = raw[1:] + bytes([VENDOR_PCI_TYPE]) + _header(Command.ATTESTATION_CHALLENGE)[1:] + body
        signature = self._identity.attestation_key().sign(signed, ec.ECDSA(hashes.SHA384()))
        return body + signature

    def _reset_counter(self, req: CounterRequest, raw: bytes) -> bytes:
        if (req.kind, req.port) != (0, 0):   # 0: resets of this device
            raise Refused(ErrorCode.INVALID_REQ, req.kind)
        return struct.pack("<H", min(self.device_resets, 0xFFFF))

    def _ddi(self, req: DdiRequest, raw: bytes) -> bytes:
        return management_ddi(self._identity, self._kind, req.rest)


COMMANDS: dict[int, tuple[type[Record], Callable[[Management, Any, bytes], bytes]]] = {
    Command.GET_FW_VERSION: (Area, Management._fw_version),
    Command.GET_DEVICE_CAPABILITIES: (Capabilities, Management._capabilities),
    Command.GET_DEVICE_ID: (Empty, Management._device_id),
    Command.GET_DEVICE_INFO: (Area, Management._device_info),
    Command.GET_DIGEST: (DigestRequest, Management._digest),
    Command.GET_CERTIFICATE: (CertificateRequest, Management._certificate),
    Command.ATTESTATION_CHALLENGE: (ChallengeRequest, Management._challenge),
    Command.RESET_COUNTER: (CounterRequest, Management._reset_counter),
    Command.MANAGEMENT_DDI: (DdiRequest, Management._ddi),
}


def _header(command: int, request: bool = False) -> bytes:
    return bytes([VENDOR_PCI_TYPE]) + struct.pack(">H", MSFT_VENDOR_ID) + bytes([_RQ if request else 0, command])


def _message(command: int, body: bytes) -> bytes:
    return _header(command) + body


def request(command: int, body: bytes = b"") -> bytes:
    """A vendor-defined request message (type byte first), for requesters and tests."""
    return _header(command, True) + body


def management_ddi(identity: DeviceIdentity, kind: DeviceKind, payload: bytes) -> bytes:
    """Run one MBOR DDI request of the management subset; every failure is an MBOR DDI error response."""
    try:
        opened = open_request(payload)
    except MborError:
        return encode_response(OP_INVALID, DdiStatus.DdiDecodeFailed)
    hdr = opened.header
    spec = OPS.get(hdr.op)

    def error(status: DdiStatus) -> bytes:
        return encode_response(hdr.op, status, rev=hdr.rev, sess_id=hdr.sess_id)

    if spec is None or spec.name not in MANAGEMENT_DDI_OPS:
        return error(DdiStatus.UnsupportedCmd)
    if hdr.sess_id is not None:
        return error(DdiStatus.InvalidArg if spec.name == "GetApiRev" else DdiStatus.SessionNotExpected)
    if (spec.name == "GetApiRev") != (hdr.rev is None) or (
            hdr.rev is not None and not API_REV_MIN <= (hdr.rev.major, hdr.rev.minor) <= API_REV_MAX):
        return error(DdiStatus.UnsupportedRevision)
    try:
        data = opened.data(spec.request)
    except MborError:
        return error(DdiStatus.DdiDecodeFailed)
    call = Call(None, identity, b"", hdr, kind=kind)   # no vault: no partition's keys exist here
    try:
        if call.physical:
            data = physical.from_device(spec.name, "request", data)
        result = HANDLERS[spec.name](call, data)
        if call.physical:
            result = physical.to_device(spec.name, "response", result)
    except DdiFailure as failure:
        return error(failure.status)
    return encode_response(hdr.op, DdiStatus.Success, spec.response, result, rev=hdr.rev, sess_id=hdr.sess_id)
