"""The requester side: MCTP messages over a ``Mailbox``, and the SPDM attestation flow with verification.

``MctpRequester.request`` packetizes a message (64-byte unit, tag owner set, a new tag each time),
sends it, and reassembles the answer with the same tag. ``attest`` runs GET_VERSION to signed
GET_MEASUREMENTS, verifies the certificate chain with ``pyhsm.protocol.dice.verify`` (the verifier of
``pyhsm verify-chain``), the CHALLENGE_AUTH and MEASUREMENTS signatures against the leaf key and the
transcripts, and, given reference firmware, each measurement against the reference stage image.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field
from typing import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding

from pyhsm.client.serialbus.mailbox import Mailbox
from pyhsm.protocol.dice import der
from pyhsm.protocol.dice.firmware import Stage
from pyhsm.protocol.dice.verify import VerificationError, VerifiedChain, verify_chain
from pyhsm.protocol.serialbus import control, spdm
from pyhsm.protocol.serialbus.mctp import Packet, Reassembler, packetize

HOST_ADDRESS = 0x10       # the requester's own 7-bit address (a BMC's usual one)
HOST_EID = 0x08
RESPONSE_TIMEOUT_S = 5.0


class ProtocolError(Exception):
    """The responder answered something the requester cannot accept."""


class MctpRequester:
    """MCTP request/response over one mailbox, from ``HOST_EID`` to ``dest_eid``."""

    def __init__(self, mailbox: Mailbox, dest_eid: int = 0, host_eid: int = HOST_EID) -> None:
        self.mailbox = mailbox
        self.dest_eid = dest_eid
        self.host_eid = host_eid
        self._tag = 0

    def request(self, body: bytes, timeout_s: float = RESPONSE_TIMEOUT_S) -> bytes:
        """Send a request message (type byte first) and return the response message."""
        self._tag = (self._tag + 1) % 8
        for packet in packetize(body, dest_addr=self.mailbox.address, src_addr=HOST_ADDRESS,
                                dest_eid=self.dest_eid, src_eid=self.host_eid, tag=self._tag, tag_owner=True):
            self.mailbox.send(packet.encode())
        assembly = Reassembler()
        while True:
            raw = self.mailbox.receive(timeout_s)
            packet = Packet.decode(HOST_ADDRESS, raw)
            if packet.tag != self._tag or packet.tag_owner:
                raise ProtocolError(f"answer with tag {packet.tag} (owner {packet.tag_owner}), asked {self._tag}")
            message = assembly.feed(packet)
            if message is not None:
                if message.body[:1] != body[:1]:
                    raise ProtocolError(f"answer of message type {message.body[:1].hex()} to {body[:1].hex()}")
                return message.body

    def control(self, command: int, data: bytes = b"") -> bytes:
        """An MCTP control request; returns the data after a SUCCESS completion code."""
        answer = self.request(bytes([control.MESSAGE_TYPE, 0x80, command]) + data)
        if len(answer) < 4 or answer[2] != command:
            raise ProtocolError(f"malformed control response {answer.hex()}")
        if answer[3] != control.Completion.SUCCESS:
            raise ProtocolError(f"control command 0x{command:02x}: completion code 0x{answer[3]:02x}")
        return answer[4:]


@dataclass
class Attestation:
    """What ``attest`` established."""

    version: int = 0
    chain: VerifiedChain | None = None
    certificates: list[x509.Certificate] = field(default_factory=list)
    measurements: dict[int, bytes] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)


class SpdmRequester:
    """An SPDM 1.2 requester over MCTP, keeping the transcripts the responder signs."""

    def __init__(self, mctp: MctpRequester) -> None:
        self.mctp = mctp
        self.vca = b""
        self.b = b""

    def exchange(self, request: bytes, expect: spdm.Code) -> bytes:
        answer = self.mctp.request(bytes([control.SPDM_TYPE]) + request)[1:]
        if len(answer) < 4:
            raise ProtocolError("short SPDM response")
        if answer[1] == spdm.Code.ERROR:
            raise ProtocolError(f"SPDM ERROR {spdm.ErrorCode(answer[2]).name} (data 0x{answer[3]:02x}) "
                                f"to request 0x{request[1]:02x}")
        if answer[1] != expect:
            raise ProtocolError(f"SPDM response 0x{answer[1]:02x}, expected {expect.name}")
        return answer

    def negotiate(self) -> int:
        """GET_VERSION, GET_CAPABILITIES, NEGOTIATE_ALGORITHMS; returns the negotiated version."""
        request = spdm.message(spdm.Code.GET_VERSION, version=spdm.VERSION_10)
        version = self.exchange(request, spdm.Code.VERSION)
        offered = spdm.VersionEntries.decode(version[4:])
        entries = [entry >> 8 for entry, in struct.iter_unpack("<H", offered.rest[:2 * offered.count])]
        if spdm.VERSION_12 not in entries:
            raise ProtocolError(f"responder offers SPDM versions {entries}, not 1.2")
        self.vca = request + version
        caps_req = spdm.message(spdm.Code.GET_CAPABILITIES, body=spdm.Capabilities(
            0, 0, spdm.DATA_TRANSFER_SIZE, spdm.DATA_TRANSFER_SIZE).encode())
        caps = self.exchange(caps_req, spdm.Code.CAPABILITIES)
        self.vca += caps_req + caps
        flags = spdm.Capabilities.decode(caps[4:]).flags
        if not flags & 0x02 or not flags & 0x04 or (flags >> 3) & 3 != 2:
            raise ProtocolError(f"responder capabilities 0x{flags:x} lack CERT, CHAL or signed MEAS")
        algs_req = spdm.message(spdm.Code.NEGOTIATE_ALGORITHMS, body=spdm.Algorithms(
            32, spdm.MEAS_SPEC_DMTF, 0, spdm.ASYM_ECDSA_P384, spdm.HASH_SHA384, 0, 0).encode())
        algs = self.exchange(algs_req, spdm.Code.ALGORITHMS)
        self.vca += algs_req + algs
        sel = spdm.AlgorithmsResponse.decode(algs[4:])
        if (sel.base_asym, sel.base_hash, sel.measurement_hash) != (
                spdm.ASYM_ECDSA_P384, spdm.HASH_SHA384, spdm.MEAS_HASH_SHA384):
            raise ProtocolError("responder did not select ECDSA P-384 / SHA-384")
        return spdm.VERSION_12

    def certificate_chain(self) -> tuple[bytes, bytes]:
        """GET_DIGESTS and GET_CERTIFICATE of slot 0: (slot digest, SPDM certificate chain)."""
        digests_req = spdm.message(spdm.Code.GET_DIGESTS)
        digests = self.exchange(digests_req, spdm.Code.DIGESTS)
        self.b = digests_req + digests
        chain = b""
        remainder = 1
        while remainder:
            req = spdm.message(spdm.Code.GET_CERTIFICATE, body=spdm.GetCertificate(len(chain), 0xFFFF).encode())
            answer = self.exchange(req, spdm.Code.CERTIFICATE)
            part = spdm.CertificatePortion.decode(answer[4:])
            if not part.portion_length:
                raise ProtocolError("empty certificate portion")
            chain += part.rest[:part.portion_length]
            remainder = part.remainder_length
            self.b += req + answer
        return digests[4:4 + spdm.HASH_SIZE], chain

    def challenge(self, nonce: bytes) -> bytes:
        """CHALLENGE with all measurements summarised; returns CHALLENGE_AUTH (signature included)."""
        return self.exchange(challenge_request(nonce), spdm.Code.CHALLENGE_AUTH)

    def measurements(self, nonce: bytes) -> tuple[bytes, bytes]:
        """Signed GET_MEASUREMENTS of all indices: (request, response)."""
        request = spdm.message(spdm.Code.GET_MEASUREMENTS, 1, 0xFF, spdm.GetMeasurements(nonce, 0).encode())
        return request, self.exchange(request, spdm.Code.MEASUREMENTS)


def challenge_request(nonce: bytes) -> bytes:
    """CHALLENGE of slot 0 with the summary of all measurements."""
    return spdm.message(spdm.Code.CHALLENGE, 0, 0xFF, spdm.Challenge(nonce).encode())


def verify_signature(key: ec.EllipticCurvePublicKey, context: bytes, transcript: bytes, raw: bytes) -> None:
    """Check an SPDM 1.2 r||s signature over ``transcript``; ``VerificationError`` if it fails."""
    signature = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    message = spdm.sign_prefix(context) + hashlib.sha384(transcript).digest()
    try:
        key.verify(signature, message, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise VerificationError(f"{context.decode()}: bad signature") from None


def parse_measurements(response: bytes) -> tuple[dict[int, bytes], int]:
    """(index -> digest, offset of the signature) of a MEASUREMENTS response."""
    count = response[4]
    length = int.from_bytes(response[5:8], "little")
    record, blocks, at = response[8:8 + length], {}, 0
    for _ in range(count):
        index, spec_kind, size = struct.unpack_from("<BBH", record, at)
        kind, value_size = struct.unpack_from("<BH", record, at + 4)
        if spec_kind != spdm.MEAS_SPEC_DMTF or value_size != size - 3 or kind & 0x80:
            raise ProtocolError(f"measurement block {index} is not a DMTF digest")
        blocks[index] = bytes(record[at + 7:at + 7 + value_size])
        at += 4 + size
    if at != length:
        raise ProtocolError("measurement record length disagrees with its blocks")
    opaque_at = 8 + length + spdm.NONCE_SIZE
    opaque_len = struct.unpack_from("<H", response, opaque_at)[0]
    return blocks, opaque_at + 2 + opaque_len


def attest(mctp: MctpRequester, firmware: Sequence[Stage] | None = None) -> Attestation:
    """The full SPDM flow with every check; raises ``ProtocolError`` or ``VerificationError``."""
    result = Attestation()
    requester = SpdmRequester(mctp)
    result.version = requester.negotiate()
    result.checks.append("SPDM 1.2 negotiated: ECDSA P-384, SHA-384, DMTF measurements")
    digest, spdm_chain = requester.certificate_chain()
    if hashlib.sha384(spdm_chain).digest() != digest:
        raise VerificationError("slot 0 digest does not match the certificate chain read")
    length, _ = struct.unpack_from("<HH", spdm_chain)
    if length != len(spdm_chain):
        raise VerificationError("certificate chain length field disagrees with the chain")
    certs_der = spdm_chain[4 + spdm.HASH_SIZE:]
    certs = []
    while certs_der:
        size = _der_length(certs_der)
        certs.append(x509.load_der_x509_certificate(certs_der[:size]))
        certs_der = certs_der[size:]
    if hashlib.sha384(certs[0].public_bytes(Encoding.DER)).digest() != spdm_chain[4:4 + spdm.HASH_SIZE]:
        raise VerificationError("root hash does not match the first certificate")
    result.certificates = certs
    result.chain = verify_chain(certs, firmware)
    result.checks.append(f"certificate chain of {len(certs)} verified (signatures, CA path, UEID, TcbInfo"
                         f"{', FWIDs against the reference firmware' if firmware else ''})")
    leaf = result.chain.leaf_public_key
    if not isinstance(leaf, ec.EllipticCurvePublicKey):
        raise VerificationError("the leaf certificate's key is not an ECC key (SPDM signatures are ECDSA P-384)")
    nonce = os.urandom(spdm.NONCE_SIZE)
    auth = requester.challenge(nonce)
    body_end = 4 + spdm.HASH_SIZE + spdm.NONCE_SIZE + spdm.HASH_SIZE
    opaque_len = struct.unpack_from("<H", auth, body_end)[0]
    signed_end = body_end + 2 + opaque_len
    if auth[4:4 + spdm.HASH_SIZE] != digest:
        raise VerificationError("CHALLENGE_AUTH names another certificate chain")
    verify_signature(leaf, spdm.CHALLENGE_CONTEXT,
                     requester.vca + requester.b + challenge_request(nonce) + auth[:signed_end],
                     auth[signed_end:])
    summary = auth[4 + spdm.HASH_SIZE + spdm.NONCE_SIZE:body_end]
    result.checks.append("CHALLENGE_AUTH signature verified with the leaf key over the M1 transcript")
    request, response = requester.measurements(os.urandom(spdm.NONCE_SIZE))
    blocks, signed_end = parse_measurements(response)
    verify_signature(leaf, spdm.MEASUREMENTS_CONTEXT, requester.vca + request + response[:signed_end],
                     response[signed_end:])
    result.measurements = blocks
    result.checks.append(f"MEASUREMENTS signature verified over the L1 transcript ({len(blocks)} blocks)")
    record = b"".join(spdm.Measurement(i, 0 if i == 1 else 1, d).block() for i, d in sorted(blocks.items()))
    if hashlib.sha384(record).digest() != summary:
        raise VerificationError("measurement summary hash in CHALLENGE_AUTH disagrees with the measurements")
    result.checks.append("CHALLENGE_AUTH measurement summary matches the signed measurements")
    tcb = [_fwid(link.tcb) for link in result.chain.links if link.tcb]
    if [blocks.get(i + 1) for i in range(len(tcb))] != tcb:
        raise VerificationError("measurements differ from the chain's TcbInfo FWIDs")
    result.checks.append("measurements equal the FWIDs the DICE chain certifies")
    if firmware is not None:
        for stage in firmware:
            if blocks.get(stage.layer + 1) != stage.measurement:
                raise VerificationError(f"measurement {stage.layer + 1} differs from reference stage {stage.name}")
        result.checks.append(f"measurements equal the reference firmware ({', '.join(s.name for s in firmware)})")
    return result


def _fwid(tcb: der.TcbInfo) -> bytes:
    return next(d for oid, d in tcb.fwids if oid == der.OID_SHA384)


def _der_length(data: bytes) -> int:
    """Total size of the DER element at the start of ``data``."""
    if data[1] < 0x80:
        return 2 + data[1]
    n = data[1] & 0x7F
    return 2 + n + int.from_bytes(data[2:2 + n], "big")
