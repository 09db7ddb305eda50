"""The SPDM 1.2 responder: the full flow verified like `pyhsm spdm` does, and an SPDM ERROR for every
malformed, out-of-order or unsupported request."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyhsm.backend.rot.device import DiceIdentity
from pyhsm.backend.serialbus.spdm import Responder
from pyhsm.client.serialbus.requester import MctpRequester, ProtocolError, SpdmRequester, attest
from pyhsm.protocol.dice.firmware import Stage
from pyhsm.protocol.dice.verify import VerificationError
from pyhsm.protocol.serialbus import spdm
from tests.backend.serialbus.serialbus_loopback import LoopbackMailbox

V12, V10 = spdm.VERSION_12, spdm.VERSION_10


def responder(identity: DiceIdentity) -> Responder:
    from pyhsm.backend.serialbus.endpoint import stage_measurements
    return Responder(identity.certificate_chain(), identity.attestation_key(), stage_measurements(identity))


def negotiated(identity: DiceIdentity) -> Responder:
    r = responder(identity)
    r.respond(bytes([V10, spdm.Code.GET_VERSION, 0, 0]))
    r.respond(bytes([V12, spdm.Code.GET_CAPABILITIES, 0, 0]) + spdm.Capabilities(0, 0, 4096, 4096).encode())
    answer = r.respond(bytes([V12, spdm.Code.NEGOTIATE_ALGORITHMS, 0, 0]) + spdm.Algorithms(
        32, 1, 0, spdm.ASYM_ECDSA_P384, spdm.HASH_SHA384, 0, 0).encode())
    assert answer[1] == spdm.Code.ALGORITHMS
    return r


def error_of(answer: bytes) -> spdm.ErrorCode:
    assert answer[1] == spdm.Code.ERROR, answer.hex()
    return spdm.ErrorCode(answer[2])


def test_full_flow_verifies_against_the_reference_firmware(loopback: LoopbackMailbox, firmware: list[Stage]) -> None:
    result = attest(MctpRequester(loopback), firmware)
    assert sorted(result.measurements) == [1, 2, 3]
    assert [result.measurements[s.layer + 1] for s in firmware] == [s.measurement for s in firmware]
    assert any("reference firmware" in check for check in result.checks)


def test_other_firmware_fails_verification(loopback: LoopbackMailbox, firmware: list[Stage]) -> None:
    other = [dataclasses.replace(firmware[0], image=firmware[0].image + b"x"), *firmware[1:]]
    with pytest.raises(VerificationError):
        attest(MctpRequester(loopback), other)


def test_a_forged_measurement_signature_is_caught(loopback: LoopbackMailbox, firmware: list[Stage],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    genuine = loopback.endpoint.spdm.respond

    def forged(request: bytes) -> bytes:
        answer = genuine(request)
        return answer[:-1] + bytes([answer[-1] ^ 1]) if answer[1] == spdm.Code.MEASUREMENTS else answer

    monkeypatch.setattr(loopback.endpoint.spdm, "respond", forged)
    with pytest.raises(VerificationError, match="measurements signing"):
        attest(MctpRequester(loopback), firmware)


def test_requests_out_of_order_are_unexpected(identity: DiceIdentity) -> None:
    r = responder(identity)
    assert error_of(r.respond(bytes([V12, spdm.Code.GET_DIGESTS, 0, 0]))) == spdm.ErrorCode.UNEXPECTED_REQUEST
    assert error_of(r.respond(bytes([V12, spdm.Code.GET_CAPABILITIES, 0, 0]) + bytes(16))) \
        == spdm.ErrorCode.UNEXPECTED_REQUEST
    r = negotiated(identity)
    assert error_of(r.respond(bytes([V12, spdm.Code.GET_CAPABILITIES, 0, 0]) + spdm.Capabilities(
        0, 0, 4096, 4096).encode())) == spdm.ErrorCode.UNEXPECTED_REQUEST
    assert r.respond(bytes([V10, spdm.Code.GET_VERSION, 0, 0]))[1] == spdm.Code.VERSION
    assert error_of(r.respond(bytes([V12, spdm.Code.CHALLENGE, 0, 0]) + bytes(32))) \
        == spdm.ErrorCode.UNEXPECTED_REQUEST


@pytest.mark.parametrize("request_bytes, code", [
    (b"\x12", spdm.ErrorCode.INVALID_REQUEST),
    (bytes([V12, spdm.Code.GET_VERSION, 0, 0]), spdm.ErrorCode.VERSION_MISMATCH),
    (bytes([V10, spdm.Code.GET_DIGESTS, 0, 0]), spdm.ErrorCode.VERSION_MISMATCH),
    (bytes([V12, 0xE5, 0, 0]), spdm.ErrorCode.UNSUPPORTED_REQUEST),     # KEY_EXCHANGE: not offered
    (bytes([V12, spdm.Code.GET_DIGESTS, 0, 0, 0]), spdm.ErrorCode.INVALID_REQUEST),
    (bytes([V12, spdm.Code.GET_CERTIFICATE, 1, 0, 0, 0, 0x10, 0]), spdm.ErrorCode.INVALID_REQUEST),
    (bytes([V12, spdm.Code.GET_CERTIFICATE, 0, 0, 0xFF, 0xFF, 0x10, 0]), spdm.ErrorCode.INVALID_REQUEST),
    (bytes([V12, spdm.Code.GET_CERTIFICATE, 0, 0, 0]), spdm.ErrorCode.INVALID_REQUEST),
    (bytes([V12, spdm.Code.CHALLENGE, 0, 0]) + bytes(31), spdm.ErrorCode.INVALID_REQUEST),
    (bytes([V12, spdm.Code.CHALLENGE, 3, 0]) + bytes(32), spdm.ErrorCode.INVALID_REQUEST),
    (bytes([V12, spdm.Code.GET_MEASUREMENTS, 0, 9]), spdm.ErrorCode.INVALID_REQUEST),
    (bytes([V12, spdm.Code.GET_MEASUREMENTS, 2, 0xFF]), spdm.ErrorCode.INVALID_REQUEST),
    (bytes([V12, spdm.Code.GET_MEASUREMENTS, 1, 0xFF]) + bytes(32), spdm.ErrorCode.INVALID_REQUEST),
    (bytes([V12, spdm.Code.GET_MEASUREMENTS, 1, 0xFF]) + bytes(32) + b"\x01", spdm.ErrorCode.INVALID_REQUEST),
])
def test_malformed_requests_get_an_error(identity: DiceIdentity, request_bytes: bytes, code: spdm.ErrorCode) -> None:
    assert error_of(negotiated(identity).respond(request_bytes)) == code


def test_negotiation_refuses_other_algorithms_and_small_transfer_sizes(identity: DiceIdentity) -> None:
    r = responder(identity)
    r.respond(bytes([V10, spdm.Code.GET_VERSION, 0, 0]))
    small = bytes([V12, spdm.Code.GET_CAPABILITIES, 0, 0]) + spdm.Capabilities(0, 0, 41, 4096).encode()
    assert error_of(r.respond(small)) == spdm.ErrorCode.INVALID_REQUEST
    r.respond(bytes([V12, spdm.Code.GET_CAPABILITIES, 0, 0]) + spdm.Capabilities(0, 0, 4096, 4096).encode())
    p256 = bytes([V12, spdm.Code.NEGOTIATE_ALGORITHMS, 0, 0]) + spdm.Algorithms(32, 1, 0, 1 << 4, 1, 0, 0).encode()
    assert error_of(r.respond(p256)) == spdm.ErrorCode.INVALID_REQUEST
    bad_length = bytes([V12, spdm.Code.NEGOTIATE_ALGORITHMS, 0, 0]) + spdm.Algorithms(
        40, 1, 0, spdm.ASYM_ECDSA_P384, spdm.HASH_SHA384, 0, 0).encode()
    assert error_of(r.respond(bad_length)) == spdm.ErrorCode.INVALID_REQUEST


def test_certificate_portions_respect_the_requesters_transfer_size(identity: DiceIdentity) -> None:
    r = responder(identity)
    r.respond(bytes([V10, spdm.Code.GET_VERSION, 0, 0]))
    r.respond(bytes([V12, spdm.Code.GET_CAPABILITIES, 0, 0]) + spdm.Capabilities(0, 0, 256, 4096).encode())
    r.respond(bytes([V12, spdm.Code.NEGOTIATE_ALGORITHMS, 0, 0]) + spdm.Algorithms(
        32, 1, 0, spdm.ASYM_ECDSA_P384, spdm.HASH_SHA384, 0, 0).encode())
    answer = r.respond(bytes([V12, spdm.Code.GET_CERTIFICATE, 0, 0]) + struct.pack("<HH", 0, 0xFFFF))
    portion, remainder = struct.unpack_from("<HH", answer, 4)
    assert len(answer) == 256 and portion == 248 and remainder > 0


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=64))
def test_any_request_gets_a_response_or_an_error(identity: DiceIdentity, request_bytes: bytes) -> None:
    r = negotiated(identity)
    answer = r.respond(request_bytes)
    assert len(answer) >= 4 and answer[0] in (V10, V12)
    assert answer[1] == spdm.Code.ERROR or (request_bytes[1] & 0x7F) == answer[1] & 0x7F


def test_requester_reports_errors(loopback: LoopbackMailbox) -> None:
    requester = SpdmRequester(MctpRequester(loopback))
    with pytest.raises(ProtocolError, match="UNEXPECTED_REQUEST"):
        requester.certificate_chain()
