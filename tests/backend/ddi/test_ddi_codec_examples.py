"""The vendor encoder's worked examples (docs/ddi.md, "MBOR strictness"), byte for byte, through the schemas and through a partition."""

from __future__ import annotations

from pyhsm.protocol import link
from pyhsm.protocol.ddi import envelope
from pyhsm.protocol.ddi.optable import OPS
from pyhsm.protocol.ddi.status import DdiStatus

GET_API_REV_REQ = bytes.fromhex("A2 18 00 A1 18 02 1A 00 00 03 EA 18 01 A0")
GET_API_REV_RESP = bytes.fromhex(
    "A2 18 00 A3 18 02 1A 00 00 03 EA 18 04 1A 00 00 00 00 18 05 14 18 01 A2"
    " 18 01 A2 18 01 1A 00 00 00 01 18 02 1A 00 00 00 00"
    " 18 02 A2 18 01 1A 00 00 00 01 18 02 1A 00 00 00 00")
SDK_VECTOR_REV_1_1 = bytes.fromhex(
    "A2 18 00 A2 18 01 A2 18 01 1A 00 00 00 01 18 02 1A 00 00 00 01 18 02 1A 00 00 03 EA 18 01 A0")
AES_REQ = bytes.fromhex(
    "A2 18 00 A3 18 01 A2 18 01 1A 00 00 00 01 18 02"
    "1A 00 00 00 00 18 02 1A 00 00 04 30 18 03 19 00"
    "00 18 01 A4 18 01 19 01 02 18 02 1A 00 00 00 01"
    "18 03 83 00 10 00 00 00 00 01 02 03 04 05 06 07"
    "08 09 0A 0B 0C 0D 0E 0F 18 04 83 00 10 00 00 00" + "AA" * 16)
AES_RESP = bytes.fromhex(
    "A2 18 00 A5 18 01 A2 18 01 1A 00 00 00 01 18 02"
    "1A 00 00 00 00 18 02 1A 00 00 04 30 18 03 19 00"
    "00 18 04 1A 00 00 00 00 18 05 14 18 01 A2 18 01"
    "81 00 10 00 C0 C1 C2 C3 C4 C5 C6 C7 C8 C9 CA CB"
    "CC CD CE CF 18 02 83 00 10 00 00 00 C0 C1 C2 C3"
    "C4 C5 C6 C7 C8 C9 CA CB CC CD CE CF")
KEY_NOT_FOUND = bytes.fromhex(
    "A2 18 00 A5 18 01 A2 18 01 1A 00 00 00 01 18 02 1A 00 00 00 00 18 02 1A 00 00 04 30"
    " 18 03 19 00 00 18 04 1A 08 70 00 0E 18 05 14 18 01 A0")

GET_API_REV = OPS[1002]
AES = OPS[1072]
CT = bytes(range(0xC0, 0xD0))


def test_get_api_rev_request_and_response_bytes() -> None:
    assert envelope.encode_request(1002, GET_API_REV.request, GET_API_REV.request()) == GET_API_REV_REQ
    resp = GET_API_REV.response(min=envelope.rev(1, 0), max=envelope.rev(1, 0))
    assert envelope.encode_response(1002, 0, GET_API_REV.response, resp) == GET_API_REV_RESP


def test_sdk_encoder_vector_with_revision() -> None:
    encoded = envelope.encode_request(1002, GET_API_REV.request, GET_API_REV.request(), rev=envelope.rev(1, 1))
    assert encoded == SDK_VECTOR_REV_1_1


def test_aes_example_padding_both_directions() -> None:
    req = AES.request(key_id=0x0102, op=1, msg=bytes(range(16)), iv=b"\xAA" * 16)
    assert envelope.encode_request(1072, AES.request, req, rev=envelope.rev(1, 0), sess_id=0) == AES_REQ
    resp = AES.response(msg=CT, iv=CT)
    encoded = envelope.encode_response(1072, 0, AES.response, resp, rev=envelope.rev(1, 0), sess_id=0)
    assert encoded == AES_RESP
    header, data = envelope.decode_response(AES_RESP, AES.response)
    assert header.status == 0 and data == resp
    assert envelope.open_request(AES_REQ).data(AES.request) == req


def test_key_not_found_error_bytes() -> None:
    encoded = envelope.encode_response(1072, DdiStatus.KeyNotFound, rev=envelope.rev(1, 0), sess_id=0)
    assert encoded == KEY_NOT_FOUND
    header, data = envelope.decode_response(KEY_NOT_FOUND, AES.response)
    assert DdiStatus(header.status) is DdiStatus.KeyNotFound and data is None


def test_partition_answers_get_api_rev_with_the_spec_bytes(partition) -> None:
    response = partition.execute(link.Request(1, 1, 0, 0, 0, 8192, GET_API_REV_REQ))
    assert response.status == 0
    assert response.payload == GET_API_REV_RESP
    assert response.session_flags == 0


def test_status_enum_is_generated_from_appendix_a() -> None:
    assert len(DdiStatus) == 202
    assert DdiStatus.KeyNotFound == 0x0870000E
    assert DdiStatus.PartitionIdKeyGenerationPctFailed == 0x087000D8
    assert DdiStatus(0x08680002).name == "DdiDecodeFailed"
