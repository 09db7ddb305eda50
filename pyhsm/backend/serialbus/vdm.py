"""Vendor-defined PCI messages (MCTP type 0x7E, vendor 0x1414), the responder side: the
Microsoft/Cerberus command set the HSM firmware answers on its serial side, and management DDI (MBOR)
requests.

The message layouts and codes are declared in ``pyhsm.protocol.serialbus.vdm`` (docs/serial-mailbox.md).
Every command is declared once in ``COMMANDS`` with its request record. Failures are answered with the
Cerberus ERROR message; encrypted requests are refused (no sessions on this endpoint).

Management DDI (command 0xC0, our own code outside Cerberus's set): the body is an MBOR DDI request and
the answer an MBOR DDI response. Only GetApiRev, GetDeviceInfo, GetCertChainInfo and GetCertificate
run, with the device's identity and no vault: the serial endpoint cannot reach any partition's keys.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.backend.ddi.call import Call
from pyhsm.backend.ddi.ops import HANDLERS
from pyhsm.backend.ddi.ops.info import API_REV_MAX, API_REV_MIN
from pyhsm.backend.identity import DeviceIdentity
from pyhsm.backend.serialbus.chunking import OutOfRange, portion
from pyhsm.backend.serialbus.dispatch import Route
from pyhsm.protocol.ddi.envelope import encode_response, open_request
from pyhsm.protocol.ddi.errors import DdiFailure, ResponseStatus
from pyhsm.protocol.ddi.mbor import MborError
from pyhsm.protocol.ddi.optable import OPS
from pyhsm.protocol.ddi.schemas import OP_INVALID
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import DeviceKind
from pyhsm.protocol.dice import der
from pyhsm.protocol.serialbus.control import MSFT_VENDOR_ID
from pyhsm.protocol.serialbus.record import Empty, Raw, RecordError
from pyhsm.protocol.serialbus.vdm import (
    CRYPT,
    FW_VERSION_LEN,
    MAX_BODY,
    RQ,
    Area,
    Capabilities,
    CertificateRequest,
    ChallengeRequest,
    Command,
    CounterRequest,
    DigestRequest,
    ErrorBody,
    ErrorCode,
    VendorHeader,
    message,
)

PCI_IDS = (0x1414, 0xC003, 0x1414, 0xC003)   # vendor, device, subsystem vendor, subsystem
MANAGEMENT_DDI_OPS = frozenset({"GetApiRev", "GetDeviceInfo", "GetCertChainInfo", "GetCertificate"})


class Refused(Exception):
    def __init__(self, code: ErrorCode, data: int = 0) -> None:
        super().__init__(code.name)
        self.code, self.data = code, data


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
        try:
            header = VendorHeader.decode(body)
        except RecordError:
            return None
        if header.vendor != MSFT_VENDOR_ID or not header.flags & RQ:
            return None
        try:
            if header.flags & CRYPT:
                raise Refused(ErrorCode.INVALID_REQ, header.command)
            route = COMMANDS.get(header.command)
            if route is None:
                raise Refused(ErrorCode.UNSUPPORTED, header.command)
            answer = route.answer(self, header)
        except RecordError:
            return message(Command.ERROR, ErrorBody(ErrorCode.INVALID_REQ, header.command).encode())
        except Refused as refusal:
            return message(Command.ERROR, ErrorBody(refusal.code, refusal.data).encode())
        return message(header.command, answer)

    # -- handlers: (header, decoded body) -> response body ----------------------------------------

    def _fw_version(self, header: VendorHeader, req: Area) -> bytes:
        stages = sorted(getattr(self._identity, "stages", ()), key=lambda s: -s.layer)  # active first
        if req.index >= len(stages):
            raise Refused(ErrorCode.INVALID_REQ, req.index)
        return stages[req.index].version.encode()[:FW_VERSION_LEN].ljust(FW_VERSION_LEN, b"\0")

    def _capabilities(self, header: VendorHeader, req: Capabilities) -> bytes:
        return OUR_CAPABILITIES.encode() + bytes([MAX_TIMEOUT_10MS, MAX_CRYPTO_100MS])

    def _device_id(self, header: VendorHeader, req: Empty) -> bytes:
        return struct.pack("<4H", *PCI_IDS)

    def _device_info(self, header: VendorHeader, req: Area) -> bytes:
        if req.index != 0:                 # 0: the unique chip identifier (the DICE UEID)
            raise Refused(ErrorCode.INVALID_REQ, req.index)
        cert = x509.load_der_x509_certificate(self._chain[0])
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(der.OID_TCG_DICE_UEID)).value
        assert isinstance(ext, x509.UnrecognizedExtension)    # cryptography does not parse the TCG UEID
        return der.decode_ueid(ext.value)

    def _digest(self, header: VendorHeader, req: DigestRequest) -> bytes:
        if req.slot != 0 or req.key_alg != 0:
            raise Refused(ErrorCode.INVALID_REQ, req.slot)
        return bytes([0x01, len(self._chain)]) + b"".join(hashlib.sha256(c).digest() for c in self._chain)

    def _certificate(self, header: VendorHeader, req: CertificateRequest) -> bytes:
        if req.slot != 0 or req.cert >= len(self._chain):
            raise Refused(ErrorCode.INVALID_REQ, req.cert)
        try:
            part = portion(self._chain[req.cert], req.offset, req.length or MAX_BODY, MAX_BODY - 2)
        except OutOfRange:
            raise Refused(ErrorCode.INVALID_REQ, req.cert) from None
        return bytes([req.slot, req.cert]) + part

    def _challenge(self, header: VendorHeader, req: ChallengeRequest) -> bytes:
        if req.slot != 0:
            raise Refused(ErrorCode.INVALID_REQ, req.slot)
        pmr0 = bytes(48)
        for stage in sorted(getattr(self._identity, "stages", ()), key=lambda s: s.layer):
            pmr0 = hashlib.sha384(pmr0 + stage.measurement).digest()
        nonce = hashlib.sha256(req.nonce + pmr0).digest()      # fresh per challenge, bound to the request
        body = struct.pack("<BBBBH", 0, 0x01, 1, 1, 0) + nonce + bytes([1, len(pmr0)]) + pmr0
        # signed: the request without its type byte, then the response without the signature
        signed = header.encode()[1:] + message(Command.ATTESTATION_CHALLENGE, body)
        signature = self._identity.attestation_key().sign(signed, ec.ECDSA(hashes.SHA384()))
        return body + signature

    def _reset_counter(self, header: VendorHeader, req: CounterRequest) -> bytes:
        if (req.kind, req.port) != (0, 0):   # 0: resets of this device
            raise Refused(ErrorCode.INVALID_REQ, req.kind)
        return struct.pack("<H", min(self.device_resets, 0xFFFF))

    def _ddi(self, header: VendorHeader, req: Raw) -> bytes:
        return management_ddi(self._identity, self._kind, req.rest)


COMMANDS: dict[int, Route[Management, VendorHeader]] = {
    Command.GET_FW_VERSION: Route(Area, Management._fw_version),
    Command.GET_DEVICE_CAPABILITIES: Route(Capabilities, Management._capabilities),
    Command.GET_DEVICE_ID: Route(Empty, Management._device_id),
    Command.GET_DEVICE_INFO: Route(Area, Management._device_info),
    Command.GET_DIGEST: Route(DigestRequest, Management._digest),
    Command.GET_CERTIFICATE: Route(CertificateRequest, Management._certificate),
    Command.ATTESTATION_CHALLENGE: Route(ChallengeRequest, Management._challenge),
    Command.RESET_COUNTER: Route(CounterRequest, Management._reset_counter),
    Command.MANAGEMENT_DDI: Route(Raw, Management._ddi),
}


def management_ddi(identity: DeviceIdentity, kind: DeviceKind, payload: bytes) -> bytes:
    """Run one MBOR DDI request of the management subset; every failure is an MBOR DDI error response."""
    try:
        opened = open_request(payload)
    except MborError:
        return encode_response(OP_INVALID, DdiStatus.DdiDecodeFailed)
    hdr = opened.header
    spec = OPS.get(hdr.op)

    def error(status: ResponseStatus) -> bytes:
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
    call = Call(None, identity, b"", hdr, HANDLERS, kind=kind)   # no vault: no partition's keys exist here
    try:
        result = call.run(spec.name, data)
    except DdiFailure as failure:
        return error(failure.status)
    return encode_response(hdr.op, DdiStatus.Success, spec.response, result, rev=hdr.rev, sess_id=hdr.sess_id)
