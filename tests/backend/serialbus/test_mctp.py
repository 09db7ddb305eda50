"""DSP0237 packets, reassembly rules and MCTP control: every malformed packet gets a defined drop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyhsm.backend.rot.device import DiceIdentity
from pyhsm.backend.serialbus.endpoint import Endpoint
from pyhsm.client.serialbus.requester import HOST_ADDRESS, HOST_EID, MctpRequester
from pyhsm.protocol.serialbus import control
from pyhsm.protocol.serialbus.mctp import Drop, Packet, packetize, pec
from tests.backend.serialbus.serialbus_loopback import ADDRESS, LoopbackMailbox


def packet(payload: bytes = b"\x00\x80\x02", *, som: bool = True, eom: bool = True, seq: int = 0, tag: int = 1,
           owner: bool = True, dest_eid: int = 0, src_eid: int = HOST_EID) -> Packet:
    return Packet(ADDRESS, HOST_ADDRESS, dest_eid, src_eid, som, eom, seq, owner, tag, payload)


def test_pec_is_crc8_smbus() -> None:
    assert pec(b"123456789") == 0xF4          # the CRC-8/SMBUS check value


@given(st.binary(max_size=247), st.booleans(), st.booleans(), st.integers(0, 3), st.booleans(), st.integers(0, 7))
def test_packet_round_trip(payload: bytes, som: bool, eom: bool, seq: int, owner: bool, tag: int) -> None:
    p = packet(payload, som=som, eom=eom, seq=seq, owner=owner, tag=tag)
    assert Packet.decode(ADDRESS, p.encode()) == p


def drop_of(endpoint: Endpoint, data: bytes) -> int:
    answer = endpoint.handle(ADDRESS, data)
    assert not answer.packets
    return answer.status


def test_malformed_packets_are_dropped_with_their_reason(endpoint: Endpoint) -> None:
    good = packet().encode()
    assert drop_of(endpoint, good[:7]) == Drop.TOO_SHORT
    assert drop_of(endpoint, good[:-1] + bytes([good[-1] ^ 1])) == Drop.BAD_PEC
    wrong_cmd = b"\x0e" + good[1:-1]
    assert drop_of(endpoint, wrong_cmd + bytes([pec(bytes([ADDRESS << 1]) + wrong_cmd)])) == Drop.BAD_HEADER
    assert drop_of(endpoint, packet(dest_eid=0x33).encode()) == Drop.NOT_FOR_US
    assert drop_of(endpoint, packet(owner=False).encode()) == Drop.UNEXPECTED_RESPONSE
    assert drop_of(endpoint, packet(b"\x01\x00").encode()) == Drop.UNSUPPORTED_TYPE
    assert drop_of(endpoint, packet(b"\x05" * 248).encode()) == Drop.PACKET_TOO_LONG


def test_reassembly_rules_follow_the_firmware(endpoint: Endpoint) -> None:
    first = packet(b"\x05" + bytes(63), eom=False)
    assert drop_of(endpoint, packet(som=False, seq=1).encode()) == Drop.NO_SOM
    assert drop_of(endpoint, first.encode()) == 0
    assert drop_of(endpoint, packet(bytes(64), som=False, eom=False, seq=1, tag=2).encode()) == Drop.UNEXPECTED_PACKET
    assert drop_of(endpoint, packet(bytes(64), som=False, eom=False, seq=1, src_eid=9).encode()) == Drop.INVALID_EID
    assert drop_of(endpoint, packet(bytes(64), som=False, eom=False, seq=2).encode()) == Drop.OUT_OF_SEQUENCE
    assert drop_of(endpoint, first.encode()) == 0
    assert drop_of(endpoint, packet(bytes(30), som=False, eom=False, seq=1).encode()) == Drop.MIDDLE_PACKET_LENGTH
    big = [packet(b"\x05" + bytes(246) if i == 0 else bytes(247), som=i == 0, eom=False, seq=i % 4) for i in range(17)]
    statuses = [endpoint.handle(ADDRESS, p.encode()).status for p in big]
    assert statuses[:16] == [0] * 16 and statuses[16] == Drop.MESSAGE_TOO_LARGE


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_any_bytes_get_a_defined_answer(identity: DiceIdentity, data: bytes) -> None:
    answer = Endpoint(identity).handle(ADDRESS, data)
    assert answer.status == 0 or answer.status in set(Drop)
    for raw in answer.packets:
        Packet.decode(HOST_ADDRESS, raw)


@settings(max_examples=200)
@given(st.integers(0, 10), st.integers(0, 255))
def test_a_corrupted_valid_packet_is_dropped_or_answered(identity: DiceIdentity, at: int, flip: int) -> None:
    data = bytearray(packet(bytes([0, 0x80, 0x02])).encode())
    data[at] ^= flip or 1
    answer = Endpoint(identity).handle(ADDRESS, bytes(data))
    assert answer.status in set(Drop) or answer.packets


def test_control_commands(loopback: LoopbackMailbox) -> None:
    mctp = MctpRequester(loopback)
    assert mctp.control(control.Command.GET_ENDPOINT_ID)[0] == 0
    assert mctp.control(control.Command.SET_ENDPOINT_ID, bytes([0, 0x1D])) == bytes([0, 0x1D, 0])
    mctp.dest_eid = 0x1D
    assert mctp.control(control.Command.GET_ENDPOINT_ID)[0] == 0x1D
    assert mctp.control(control.Command.GET_MESSAGE_TYPE_SUPPORT) == bytes([3, 0x00, 0x05, 0x7E])
    assert mctp.control(control.Command.GET_VERSION_SUPPORT, b"\xff") == bytes([1, 0xF1, 0xF3, 0xF1, 0])
    assert mctp.control(control.Command.GET_VENDOR_MESSAGE_SUPPORT, b"\x00") == bytes.fromhex("ff0014140004")
    for command, data, code in ((control.Command.SET_ENDPOINT_ID, bytes([0, 0xFF]), control.Completion.INVALID_DATA),
                                (control.Command.SET_ENDPOINT_ID, b"\x00", control.Completion.INVALID_LENGTH),
                                (control.Command.GET_VERSION_SUPPORT, b"\x01", control.Completion.MESSAGE_TYPE_UNSUPPORTED),
                                (0x0A, b"", control.Completion.UNSUPPORTED_CMD)):
        answer = mctp.request(bytes([0, 0x80, command]) + data)
        assert answer[3] == code, (command, answer.hex())


def test_device_reset_unassigns_the_eid(endpoint: Endpoint, loopback: LoopbackMailbox) -> None:
    MctpRequester(loopback).control(control.Command.SET_ENDPOINT_ID, bytes([0, 0x20]))
    endpoint.reset()
    assert endpoint.eid.value == 0x20
    endpoint.power_cycle()
    assert endpoint.eid.value == 0


def test_answers_use_the_baseline_unit(loopback: LoopbackMailbox) -> None:
    mctp = MctpRequester(loopback)
    body = bytes([5, 0x10, 0x84, 0, 0])
    for p in packetize(body, dest_addr=ADDRESS, src_addr=HOST_ADDRESS, dest_eid=0, src_eid=HOST_EID, tag=3,
                       tag_owner=True):
        loopback.send(p.encode())
    assert all(len(Packet.decode(HOST_ADDRESS, raw).payload) <= 64 for raw in loopback.queue)
    loopback.queue.clear()
    with pytest.raises(TimeoutError):
        mctp.request(b"\x7e\x99\x99\x80\x01")     # a vendor message of another vendor: no answer
