"""Vendor-defined messages: the Cerberus commands and the management DDI subset, which reaches no
partition."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.backend.rot.device import DiceIdentity
from pyhsm.client import DdiError, HsmClient
from pyhsm.client.i2c_transport import I2cTransport
from pyhsm.client.serialbus.requester import MctpRequester
from pyhsm.protocol.serialbus.vdm import Command, ErrorCode, request
from tests.backend.serialbus.serialbus_loopback import LoopbackMailbox


def call(loopback: LoopbackMailbox, command: int, body: bytes = b"") -> bytes:
    answer = MctpRequester(loopback).request(request(command, body))
    assert answer[:4] == bytes([0x7E, 0x14, 0x14, 0x00])
    return answer[4:]


def test_device_id_capabilities_and_versions(loopback: LoopbackMailbox, identity: DiceIdentity) -> None:
    assert call(loopback, Command.GET_DEVICE_ID) == bytes([3]) + struct.pack("<4H", 0x1414, 0xC003, 0x1414, 0xC003)
    caps = call(loopback, Command.GET_DEVICE_CAPABILITIES, struct.pack("<HHBBB", 4096, 64, 0, 0, 0))
    assert caps[0] == 2 and struct.unpack_from("<HH", caps, 1) == (4096, 247) and len(caps) == 10
    runtime = call(loopback, Command.GET_FW_VERSION, b"\x00")
    assert runtime[1:].rstrip(b"\0").decode() == identity.stages[-1].version
    assert call(loopback, Command.GET_FW_VERSION, b"\x03")[:2] == bytes([Command.ERROR, ErrorCode.INVALID_REQ])


def test_certificates_and_digests_are_the_dice_chain(loopback: LoopbackMailbox, identity: DiceIdentity) -> None:
    chain = list(identity.certificate_chain())
    digests = call(loopback, Command.GET_DIGEST, b"\x00\x00")
    assert digests[1:3] == bytes([1, len(chain)])
    assert digests[3:] == b"".join(hashlib.sha256(c).digest() for c in chain)
    for i, cert in enumerate(chain):
        got = b""
        while len(got) < len(cert):
            got += call(loopback, Command.GET_CERTIFICATE, struct.pack("<BBHH", 0, i, len(got), 512))[3:]
        assert got == cert
    assert call(loopback, Command.GET_CERTIFICATE, struct.pack("<BBHH", 0, 9, 0, 0))[0] == Command.ERROR


def test_challenge_is_signed_by_the_attestation_key(loopback: LoopbackMailbox, identity: DiceIdentity) -> None:
    nonce = bytes(range(32))
    body = struct.pack("<Bx32s", 0, nonce)
    answer = call(loopback, Command.ATTESTATION_CHALLENGE, body)
    fixed = 1 + 6 + 32 + 2 + 48
    signed = request(Command.ATTESTATION_CHALLENGE, body)[1:] + bytes([0x7E, 0x14, 0x14, 0x00]) + answer[:fixed]
    identity.attestation_key().public_key().verify(answer[fixed:], signed, ec.ECDSA(hashes.SHA384()))


def test_errors_for_malformed_unknown_and_encrypted(loopback: LoopbackMailbox) -> None:
    assert call(loopback, Command.GET_DEVICE_ID, b"\x00")[:2] == bytes([Command.ERROR, ErrorCode.INVALID_REQ])
    assert call(loopback, 0x5A)[:6] == bytes([Command.ERROR, ErrorCode.UNSUPPORTED]) + struct.pack("<I", 0x5A)
    crypt = MctpRequester(loopback).request(bytes([0x7E, 0x14, 0x14, 0xA0, Command.GET_DEVICE_ID]))
    assert crypt[4:6] == bytes([Command.ERROR, ErrorCode.INVALID_REQ])


def test_management_ddi_subset(loopback: LoopbackMailbox, identity: DiceIdentity) -> None:
    client = HsmClient(I2cTransport(loopback))     # type: ignore[arg-type]
    assert client.get_api_rev() is not None
    info = client.get_cert_chain_info()
    assert [bytes(client.get_certificate(i)) for i in range(info.num_certs)] == list(identity.certificate_chain())
    with pytest.raises(DdiError):
        client.get_establish_cred_encryption_key()   # a partition operation: refused on this endpoint
