"""SPDM 1.2 responder (DSP0274 1.2.x) over MCTP (DSP0275): version, capabilities, algorithms (ECDSA
P-384 with SHA-384 only), digests and certificate of slot 0 (the device's DICE chain), challenge, and
measurements of the HSM firmware stages, signed with the attestation key (the chain's leaf).

The message codes, layouts and signing prefix are declared in ``pyhsm.protocol.serialbus.spdm``
(docs/serial-mailbox.md); this module holds the connection state machine, the transcripts and the
signing with the attestation key. Every request is declared once in ``REQUESTS``: its body record, its
handler, the connection state it needs and the state it leads to. A malformed request, one out of
order, or one this responder does not support is answered with an SPDM ERROR (``ErrorCode``); nothing
is ever silently dropped.

Signatures follow DSP0274 1.2 section 15: ECDSA-P384 over SHA-384 of
``"dmtf-spdm-v1.2.*" x 4 || zero padding || context || SHA-384(transcript)`` (a 100-byte prefix),
encoded as r || s (48 bytes each). Transcripts: CHALLENGE_AUTH signs M1 = A || B || C (A: the VCA
messages, B: digests and certificate exchanges since, C: CHALLENGE and CHALLENGE_AUTH without the
signature); MEASUREMENTS signs L1 = A || every GET_MEASUREMENTS and MEASUREMENTS since the last signed
one (the last without its signature).
"""

from __future__ import annotations

import enum
import hashlib
import os
import struct
from dataclasses import dataclass, field
from typing import Callable, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from pyhsm.backend.serialbus.chunking import OutOfRange, portion
from pyhsm.backend.serialbus.dispatch import Route
from pyhsm.protocol.serialbus.record import Empty, Raw, RecordError
from pyhsm.protocol.serialbus.spdm import (
    ASYM_ECDSA_P384,
    CHALLENGE_CONTEXT,
    DATA_TRANSFER_SIZE,
    HASH_SHA384,
    HASH_SIZE,
    MEAS_HASH_SHA384,
    MEAS_SPEC_DMTF,
    MEASUREMENTS_CONTEXT,
    MIN_DATA_TRANSFER,
    NONCE_SIZE,
    VERSION_10,
    VERSION_12,
    Algorithms,
    AlgorithmsResponse,
    Capabilities,
    CertificatePortion,
    Challenge,
    Code,
    ErrorCode,
    GetCertificate,
    GetMeasurements,
    Header,
    Measurement,
    VersionEntries,
    message,
    sign_prefix,
)

# CERT_CAP, CHAL_CAP, MEAS_CAP = 2 (measurements with signature)
RESPONDER_FLAGS = 1 << 1 | 1 << 2 | 2 << 3
CT_EXPONENT = 12              # 2^12 us: the crypto time the responder may take


class State(enum.IntEnum):
    """How far the connection has come (each request needs a minimum)."""

    NONE = 0
    VERSION = 1
    CAPABILITIES = 2
    NEGOTIATED = 3


class SpdmError(Exception):
    """A request answered with ERROR(code, data)."""

    def __init__(self, code: ErrorCode, data: int = 0, why: str = "") -> None:
        super().__init__(f"{code.name}: {why}" if why else code.name)
        self.code = code
        self.data = data


def spdm_cert_chain(chain: Sequence[bytes]) -> bytes:
    """The SPDM certificate chain of a slot: length, reserved, SHA-384 of the root, DER certificates."""
    certs = b"".join(chain)
    return struct.pack("<HH", 4 + HASH_SIZE + len(certs), 0) + hashlib.sha384(chain[0]).digest() + certs


def raw_signature(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(48, "big") + s.to_bytes(48, "big")


@dataclass
class Responder:
    """One SPDM responder: slot 0 holds ``chain`` (root first), ``key`` certifies the leaf's key."""

    chain: Sequence[bytes]
    key: ec.EllipticCurvePrivateKey
    measurements: Sequence[Measurement]
    nonce: Callable[[int], bytes] = os.urandom
    state: State = State.NONE
    _vca: bytearray = field(default_factory=bytearray)
    _b: bytearray = field(default_factory=bytearray)
    _l: bytearray = field(default_factory=bytearray)
    _peer_transfer_size: int = DATA_TRANSFER_SIZE

    def __post_init__(self) -> None:
        self._slot_chain = spdm_cert_chain(self.chain)

    def reset(self) -> None:
        self.state = State.NONE
        self._vca.clear()
        self._b.clear()
        self._l.clear()

    def respond(self, request: bytes) -> bytes:
        """The response to one SPDM request message (MCTP type byte removed). Never raises."""
        try:
            header = Header.decode(request)
        except RecordError:
            return self._error(VERSION_10, ErrorCode.INVALID_REQUEST, 0)
        version = VERSION_10 if header.code == Code.GET_VERSION else VERSION_12
        try:
            route = REQUESTS.get(header.code)
            if route is None:
                raise SpdmError(ErrorCode.UNSUPPORTED_REQUEST, header.code)
            if header.version != version:
                raise SpdmError(ErrorCode.VERSION_MISMATCH)
            if header.code != Code.GET_MEASUREMENTS:   # L1 ends at any other request (empty before NEGOTIATED)
                self._l.clear()
            if route.state is not None and self.state != route.state:
                raise SpdmError(ErrorCode.UNEXPECTED_REQUEST, 0,
                                f"{Code(header.code).name} needs {route.state.name}")
            response = route.answer(self, header)
            if route.then is not None:
                self._vca += request + response
                self.state = route.then
        except SpdmError as exc:
            return self._error(version, exc.code, exc.data)
        except RecordError:
            return self._error(version, ErrorCode.INVALID_REQUEST, 0)
        if len(response) > self._peer_transfer_size:
            return self._error(version, ErrorCode.RESPONSE_TOO_LARGE, 0)
        return response

    @staticmethod
    def _error(version: int, code: ErrorCode, data: int) -> bytes:
        return message(Code.ERROR, code, data & 0xFF, version=version)

    def _sign(self, context: bytes, transcript: bytes) -> bytes:
        digest = hashlib.sha384(transcript).digest()
        return raw_signature(self.key.sign(sign_prefix(context) + digest, ec.ECDSA(hashes.SHA384())))

    # -- handlers: (header, decoded body) -> response --------------------------------------------

    def _version(self, header: Header, body: Empty) -> bytes:
        self.reset()
        return message(Code.VERSION, body=VersionEntries(1, struct.pack("<H", VERSION_12 << 8)).encode(),
                       version=VERSION_10)

    def _capabilities(self, header: Header, caps: Capabilities) -> bytes:
        if caps.data_transfer_size < MIN_DATA_TRANSFER or caps.max_message_size < caps.data_transfer_size:
            raise SpdmError(ErrorCode.INVALID_REQUEST)
        self._peer_transfer_size = min(caps.data_transfer_size, DATA_TRANSFER_SIZE)
        ours = Capabilities(CT_EXPONENT, RESPONDER_FLAGS, DATA_TRANSFER_SIZE, DATA_TRANSFER_SIZE)
        return message(Code.CAPABILITIES, body=ours.encode())

    def _algorithms(self, header: Header, algs: Algorithms) -> bytes:
        tables = _alg_structs(algs, header.param1)
        if algs.length != len(header.encode()) or algs.length > 128:
            raise SpdmError(ErrorCode.INVALID_REQUEST)
        if not algs.base_asym & ASYM_ECDSA_P384 or not algs.base_hash & HASH_SHA384 \
                or not algs.measurement_spec & MEAS_SPEC_DMTF:
            raise SpdmError(ErrorCode.INVALID_REQUEST, 0, "ECDSA P-384, SHA-384 and DMTF measurements required")
        selected = b"".join(bytes([kind, 0x20, 0, 0]) for kind in tables)  # nothing selected for any
        body = AlgorithmsResponse(36 + len(selected), MEAS_SPEC_DMTF, 0, MEAS_HASH_SHA384, ASYM_ECDSA_P384,
                                  HASH_SHA384, 0, 0, selected)
        return message(Code.ALGORITHMS, len(tables), body=body.encode())

    def _digests(self, header: Header, body: Empty) -> bytes:
        response = message(Code.DIGESTS, 0, 0x01, hashlib.sha384(self._slot_chain).digest())
        self._b += header.encode() + response
        return response

    def _certificate(self, header: Header, ask: GetCertificate) -> bytes:
        if header.param1 & 0x0F != 0:
            raise SpdmError(ErrorCode.INVALID_REQUEST, 0, "only slot 0 is provisioned")
        try:
            part = portion(self._slot_chain, ask.offset, ask.length, self._peer_transfer_size - 8)
        except OutOfRange as exc:
            raise SpdmError(ErrorCode.INVALID_REQUEST, 0, str(exc)) from None
        remainder = len(self._slot_chain) - ask.offset - len(part)
        response = message(Code.CERTIFICATE, body=CertificatePortion(len(part), remainder, part).encode())
        self._b += header.encode() + response
        return response

    def _challenge(self, header: Header, ask: Challenge) -> bytes:
        if header.param1 != 0 or header.param2 not in (0, 1, 0xFF):
            raise SpdmError(ErrorCode.INVALID_REQUEST)
        summary = self._summary() if header.param2 else b""
        body = (hashlib.sha384(self._slot_chain).digest() + self.nonce(NONCE_SIZE) + summary
                + struct.pack("<H", 0))
        response = message(Code.CHALLENGE_AUTH, 0, 0x01, body)
        signature = self._sign(CHALLENGE_CONTEXT, bytes(self._vca + self._b) + header.encode() + response)
        self._b.clear()
        return response + signature

    def _summary(self) -> bytes:
        return hashlib.sha384(b"".join(m.block() for m in self.measurements)).digest()

    def _measurements(self, header: Header, body: Raw) -> bytes:
        signed = bool(header.param1 & 1)
        if header.param1 & ~1:
            raise SpdmError(ErrorCode.INVALID_REQUEST, 0, "raw bit streams are not offered")
        if signed:
            ask = GetMeasurements.decode(body.rest)
            if ask.slot != 0:
                raise SpdmError(ErrorCode.INVALID_REQUEST, 0, "only slot 0 is provisioned")
        else:
            Empty.decode(body.rest)
        op = header.param2
        if op == 0:
            param1, blocks = len(self.measurements), []
        elif op == 0xFF:
            param1, blocks = 0, list(self.measurements)
        else:
            blocks = [m for m in self.measurements if m.index == op]
            if not blocks:
                raise SpdmError(ErrorCode.INVALID_REQUEST, 0, f"no measurement {op}")
            param1 = 0
        record = b"".join(m.block() for m in blocks)
        response = message(Code.MEASUREMENTS, param1, 0, bytes([len(blocks)]) + len(record).to_bytes(3, "little")
                           + record + self.nonce(NONCE_SIZE) + struct.pack("<H", 0))
        self._l += header.encode() + response
        if not signed:
            return response
        signature = self._sign(MEASUREMENTS_CONTEXT, bytes(self._vca + self._l))
        self._l.clear()
        return response + signature


def _alg_structs(algs: Algorithms, count: int) -> list[int]:
    """The AlgType of each ReqAlgStruct after the extended algorithms; RecordError if malformed."""
    rest = algs.rest[4 * (algs.ext_asym_count + algs.ext_hash_count):]
    if len(algs.rest) < 4 * (algs.ext_asym_count + algs.ext_hash_count):
        raise RecordError("extended algorithm lists run past the message")
    kinds: list[int] = []
    for _ in range(count):
        if len(rest) < 2:
            raise RecordError("algorithm structure table runs past the message")
        kind, alg_count = rest[0], rest[1]
        size = 2 + (alg_count >> 4) + 4 * (alg_count & 0x0F)
        if kind not in (2, 3, 4, 5) or (kinds and kind <= kinds[-1]) or len(rest) < size:
            raise RecordError("bad algorithm structure table")
        kinds.append(kind)
        rest = rest[size:]
    if rest:
        raise RecordError("bytes after the algorithm structure tables")
    return kinds


@dataclass(frozen=True)
class Request(Route[Responder, Header]):
    """An SPDM request: accepted only in connection ``state`` (None: in any); ``then``, when set, is the
    state its answer moves the connection to, and the exchange joins the VCA transcript."""

    state: State | None = None
    then: State | None = None


REQUESTS: dict[int, Request] = {
    Code.GET_VERSION: Request(Empty, Responder._version, None, State.VERSION),
    Code.GET_CAPABILITIES: Request(Capabilities, Responder._capabilities, State.VERSION, State.CAPABILITIES),
    Code.NEGOTIATE_ALGORITHMS: Request(Algorithms, Responder._algorithms, State.CAPABILITIES, State.NEGOTIATED),
    Code.GET_DIGESTS: Request(Empty, Responder._digests, State.NEGOTIATED),
    Code.GET_CERTIFICATE: Request(GetCertificate, Responder._certificate, State.NEGOTIATED),
    Code.CHALLENGE: Request(Challenge, Responder._challenge, State.NEGOTIATED),
    Code.GET_MEASUREMENTS: Request(Raw, Responder._measurements, State.NEGOTIATED),
}
