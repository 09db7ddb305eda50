"""One HSM's serial-bus MCTP endpoint: packets in, answer packets out.

The endpoint belongs to a device (serial) and sees only its identity: the DICE chain, the attestation
key and the firmware stages' measurements, plus the management DDI subset (``vdm``). It holds no
partition and reaches no partition's keys.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Sequence

from pyhsm.backend.identity import DeviceIdentity
from pyhsm.backend.serialbus import control
from pyhsm.backend.serialbus.spdm import Responder
from pyhsm.backend.serialbus.vdm import Management
from pyhsm.protocol.serialbus.control import MESSAGE_TYPE, SPDM_TYPE
from pyhsm.protocol.serialbus.mctp import NULL_EID, Drop, Dropped, Message, Packet, Reassembler, packetize
from pyhsm.protocol.serialbus.spdm import Measurement

log = logging.getLogger("pyhsm.backend.serialbus")

# DMTF measurement value types: the ROM is immutable, the later stages are mutable firmware
_ROM_KIND, _FIRMWARE_KIND = 0x00, 0x01


@dataclass(frozen=True)
class Answer:
    """What one host packet produced: packets for the host, and 0 or the ``Drop`` reason."""

    packets: Sequence[bytes]
    status: int = 0


def stage_measurements(identity: DeviceIdentity) -> list[Measurement]:
    """One measurement per firmware stage (index = DICE layer + 1): SHA-384 of the stage image, the
    same value as the layer's TcbInfo FWID. Empty for an identity without stages."""
    return [Measurement(stage.layer + 1, _ROM_KIND if stage.layer == 0 else _FIRMWARE_KIND, stage.measurement)
            for stage in getattr(identity, "stages", ())]


class Endpoint:
    """The responder of one device's serial mailbox. Thread safe (a reconnecting device's new connection
    may overlap its old one for a moment)."""

    def __init__(self, identity: DeviceIdentity, vendor: Management | None = None) -> None:
        self.serial = identity.serial
        self.eid = control.EndpointId()
        self._reassembler = Reassembler()
        self.spdm = Responder(identity.certificate_chain(), identity.attestation_key(),
                              stage_measurements(identity))
        self._vendor = vendor
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Mailbox or device reset: message assembly and the SPDM connection start over; the EID, which
        a bus owner assigned, is volatile and goes back to 0 on a device reset only (``power_cycle``)."""
        with self._lock:
            self._reassembler.reset()
            self.spdm.reset()

    def power_cycle(self) -> None:
        """Device reset (QEMU reset of the mailbox): as ``reset``, and the EID is unassigned again."""
        self.reset()
        with self._lock:
            self.eid.value = NULL_EID
            if self._vendor is not None:
                self._vendor.device_resets += 1

    def handle(self, target_addr: int, data: bytes) -> Answer:
        """Process one host packet addressed (on the bus) to ``target_addr``."""
        with self._lock:
            return self._handle(target_addr, data)

    def _handle(self, target_addr: int, data: bytes) -> Answer:
        try:
            packet = Packet.decode(target_addr, data)
            if packet.dest_eid not in (self.eid.value, NULL_EID):
                raise Dropped(Drop.NOT_FOR_US, f"EID 0x{packet.dest_eid:02x}")
            if not packet.tag_owner:
                raise Dropped(Drop.UNEXPECTED_RESPONSE)
            if packet.som and (not packet.payload or packet.payload[0] not in control.SUPPORTED_TYPES):
                raise Dropped(Drop.UNSUPPORTED_TYPE, packet.payload[:1].hex())
            message = self._reassembler.feed(packet)
        except Dropped as drop:
            log.info("serial mailbox %s: packet dropped: %s", self.serial, drop)
            return Answer((), drop.reason)
        if message is None:
            return Answer(())
        body = self._respond(message)
        if body is None:
            return Answer(())
        return Answer([p.encode() for p in packetize(
            body, dest_addr=message.src_addr, src_addr=target_addr, dest_eid=message.src_eid,
            src_eid=self.eid.value, tag=message.tag, tag_owner=False)])

    def _respond(self, message: Message) -> bytes | None:
        kind = message.body[0]
        if kind == MESSAGE_TYPE:
            return control.respond(self.eid, message.body)
        if kind == SPDM_TYPE:
            return bytes([kind]) + self.spdm.respond(message.body[1:])
        return self._vendor(message.body) if self._vendor else None
