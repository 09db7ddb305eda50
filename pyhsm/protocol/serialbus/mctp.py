"""MCTP transport (DSP0236 1.3) in the SMBus/I2C binding (DSP0237 1.2), as the mailbox carries it.

A mailbox packet is a DSP0237 packet without its first byte (the destination slave address, which is
the address phase on a real bus): command code 0x0F, byte count, source slave address, the 4-byte
MCTP transport header, the payload, and a PEC over all of it *including* the destination address.
The responder reassembles messages under the rules the HSM firmware applies (first packet sets the
payload size, middle packets match it, the last one may be shorter; sequence numbers count modulo 4;
at most 4096 bytes) and fragments its answers at the 64-byte baseline transmission unit.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

SMBUS_COMMAND_MCTP = 0x0F
HEADER_VERSION = 1
BASELINE_UNIT = 64          # bytes of payload per packet (DSP0236 baseline transmission unit)
MAX_UNIT = 247              # the largest packet payload the firmware accepts
MAX_MESSAGE = 4096          # the firmware's message body limit
NULL_EID = 0x00
BROADCAST_EID = 0xFF
_HEAD = struct.Struct("<BBBBBBB")   # cmd, count, src addr, hdr version, dest EID, src EID, flags


class Drop(enum.IntEnum):
    """Why a packet was dropped; the mailbox's ERROR register shows the code (docs/serial-mailbox.md)."""

    TOO_SHORT = 0x20
    BAD_PEC = 0x21
    BAD_HEADER = 0x22          # command code, byte count, source address bit or header version
    NOT_FOR_US = 0x23          # destination EID neither ours nor null
    NO_SOM = 0x24
    UNEXPECTED_PACKET = 0x25   # tag or tag owner differs from the message being assembled
    INVALID_EID = 0x26         # source EID differs from the message being assembled
    OUT_OF_SEQUENCE = 0x27
    MIDDLE_PACKET_LENGTH = 0x28
    MESSAGE_TOO_LARGE = 0x29
    UNSUPPORTED_TYPE = 0x2A
    UNEXPECTED_RESPONSE = 0x2B  # tag owner 0: this endpoint sends no requests
    PACKET_TOO_LONG = 0x2C


class Dropped(Exception):
    """A packet was dropped; ``reason`` says why."""

    def __init__(self, reason: Drop, detail: str = "") -> None:
        super().__init__(f"{reason.name}{': ' + detail if detail else ''}")
        self.reason = reason


def pec(data: bytes) -> int:
    """SMBus packet error code: CRC-8, polynomial x^8 + x^2 + x + 1, initial value 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else crc << 1
    return crc


@dataclass(frozen=True)
class Packet:
    """One MCTP packet with its SMBus addressing (7-bit addresses)."""

    dest_addr: int
    src_addr: int
    dest_eid: int
    src_eid: int
    som: bool
    eom: bool
    seq: int
    tag_owner: bool
    tag: int
    payload: bytes

    def encode(self) -> bytes:
        """The mailbox form: everything after the destination address byte, PEC last."""
        flags = self.som << 7 | self.eom << 6 | (self.seq & 3) << 4 | self.tag_owner << 3 | self.tag & 7
        body = _HEAD.pack(SMBUS_COMMAND_MCTP, 5 + len(self.payload), self.src_addr << 1 | 1, HEADER_VERSION,
                          self.dest_eid, self.src_eid, flags) + self.payload
        return body + bytes([pec(bytes([self.dest_addr << 1]) + body)])

    @classmethod
    def decode(cls, dest_addr: int, data: bytes) -> Packet:
        """Parse a mailbox packet addressed to ``dest_addr``; ``Dropped`` says what is wrong."""
        if len(data) < _HEAD.size + 1:
            raise Dropped(Drop.TOO_SHORT, f"{len(data)} bytes")
        cmd, count, src, version, dest_eid, src_eid, flags = _HEAD.unpack_from(data)
        if pec(bytes([dest_addr << 1]) + data[:-1]) != data[-1]:
            raise Dropped(Drop.BAD_PEC)
        if cmd != SMBUS_COMMAND_MCTP or count != len(data) - 3 or not src & 1 or version & 0x0F != HEADER_VERSION:
            raise Dropped(Drop.BAD_HEADER, f"cmd 0x{cmd:02x} count {count} src 0x{src:02x} version 0x{version:02x}")
        payload = bytes(data[_HEAD.size:-1])
        if len(payload) > MAX_UNIT:
            raise Dropped(Drop.PACKET_TOO_LONG, f"{len(payload)} bytes of payload")
        return cls(dest_addr, src >> 1, dest_eid, src_eid, bool(flags & 0x80), bool(flags & 0x40),
                   flags >> 4 & 3, bool(flags & 8), flags & 7, payload)


@dataclass(frozen=True)
class Message:
    """A reassembled MCTP message; ``body`` starts with the message type byte."""

    src_addr: int
    src_eid: int
    dest_eid: int
    tag: int
    tag_owner: bool
    body: bytes


@dataclass
class Reassembler:
    """Message assembly for one endpoint, per the firmware's rules (see the module docstring)."""

    _first: Packet | None = None
    _data: bytearray = field(default_factory=bytearray)
    _next_seq: int = 0

    def reset(self) -> None:
        self._first, self._data, self._next_seq = None, bytearray(), 0

    def feed(self, packet: Packet) -> Message | None:
        """Add a packet addressed to this endpoint; the whole message once its EOM arrives, else None.
        ``Dropped`` for a packet that breaks assembly (assembly state follows the firmware)."""
        if packet.som:
            self._first, self._data, self._next_seq = packet, bytearray(), packet.seq
        elif self._first is None:
            raise Dropped(Drop.NO_SOM)
        elif (packet.tag, packet.tag_owner) != (self._first.tag, self._first.tag_owner):
            raise Dropped(Drop.UNEXPECTED_PACKET)
        elif packet.src_eid != self._first.src_eid:
            raise Dropped(Drop.INVALID_EID)
        first = self._first
        if packet.seq != self._next_seq:
            self.reset()
            raise Dropped(Drop.OUT_OF_SEQUENCE, f"sequence {packet.seq}")
        if not packet.som and len(packet.payload) != len(first.payload) and not (
                packet.eom and len(packet.payload) < len(first.payload)):
            self.reset()
            raise Dropped(Drop.MIDDLE_PACKET_LENGTH, f"{len(packet.payload)} bytes after {len(first.payload)}")
        if len(self._data) + len(packet.payload) > MAX_MESSAGE:
            self.reset()
            raise Dropped(Drop.MESSAGE_TOO_LARGE)
        self._data += packet.payload
        self._next_seq = (packet.seq + 1) % 4
        if not packet.eom:
            return None
        message = Message(first.src_addr, first.src_eid, first.dest_eid, first.tag, first.tag_owner,
                          bytes(self._data))
        self.reset()
        return message


def packetize(body: bytes, *, dest_addr: int, src_addr: int, dest_eid: int, src_eid: int, tag: int,
              tag_owner: bool, unit: int = BASELINE_UNIT) -> list[Packet]:
    """The packets of one message, ``unit`` bytes of payload each (the last may be shorter)."""
    chunks = [body[i:i + unit] for i in range(0, len(body), unit)] or [b""]
    return [Packet(dest_addr, src_addr, dest_eid, src_eid, i == 0, i == len(chunks) - 1, i % 4, tag_owner,
                   tag, chunk) for i, chunk in enumerate(chunks)]
