"""Seeded random register, doorbell and queue-entry operations: QEMU survives and the controller recovers.

Set AZIHSM_FUZZ_SEED to replay another sequence; AZIHSM_FUZZ_OPS to change its length.
"""

from __future__ import annotations

import os
import random

import pytest

from pyhsm.protocol import layout as L
from pyhsm.testing.qtest.controller import Controller, ControllerError
from tests.device.backend_double import GET_API_REV_REQUEST

pytestmark = pytest.mark.qemu

SEED = int(os.environ.get("AZIHSM_FUZZ_SEED", "20250607"))
OPERATIONS = int(os.environ.get("AZIHSM_FUZZ_OPS", "20000"))
REPROBE_EVERY = 500


class Fuzzer:
    """Random but biased operations: values near the interesting boundaries are likelier."""

    def __init__(self, ctrl: Controller, rng: random.Random) -> None:
        self.ctrl = ctrl
        self.qt = ctrl.qtest
        self.rng = rng
        self.pages = [ctrl.memory.alloc(4096) for _ in range(8)]
        self.counts: dict[str, int] = {}

    def value(self, bits: int = 32) -> int:
        r = self.rng
        return r.choice([0, 1, 2, 15, 16, 17, 255, 4095, 4096, 0xFFFF, 0x4E564D65, (1 << bits) - 1,
                         r.getrandbits(bits), r.getrandbits(bits), r.randrange(64)])

    def address(self) -> int:
        r = self.rng
        return r.choice([0, r.choice(self.pages), r.choice(self.pages) + r.randrange(4096),
                         0xFFFF_FFF0_0000, 0xFED0_0000, self.ctrl.regs, self.ctrl.doorbells,
                         r.getrandbits(64), r.randrange(0x1000_0000) & ~0xFFF])

    def queue(self):
        queues = [self.ctrl.admin, *self.ctrl.queues.values()]
        return self.rng.choice([q for q in queues if q is not None])

    # ---- operations ----------------------------------------------------------------------------------
    def register_write(self) -> None:
        offset = self.rng.choice([L.CAP, L.VS, L.CC, L.CSTS, L.NSSR, L.AQA, L.ASQ, L.ASQ + 4, L.ACQ,
                                  0x0C, 0x10, 0x18, 0x38, 0x100, 0xFFC])
        if offset in (L.ASQ, L.ACQ, L.CAP) and self.rng.random() < 0.5:
            self.ctrl.write64(offset, self.rng.choice([self.address(), self.value(64)]))
        elif offset == L.CC:
            self.ctrl.write32(offset, self.rng.choice([0, 1, 0x67460001, 0x67460000, self.value()]))
        else:
            self.ctrl.write32(offset, self.value())

    def register_read(self) -> None:
        offset = self.rng.randrange(0, 0x1000, 4)
        self.ctrl.read32(offset)

    def narrow_access(self) -> None:
        base = self.rng.choice([self.ctrl.regs, self.ctrl.doorbells])
        addr = base + self.rng.randrange(0x1000)
        width = self.rng.choice(["b", "w"])
        if self.rng.random() < 0.5:
            getattr(self.qt, f"write{width}")(addr, self.rng.getrandbits(8 if width == "b" else 16))
        else:
            getattr(self.qt, f"read{width}")(addr)

    def doorbell(self) -> None:
        qid = self.rng.choice([0, 1, 2, 9, 255, 256, 257, 300, self.rng.randrange(512)])
        offset = L.sq_doorbell(qid) + self.rng.choice([0, 4])
        self.ctrl.ring(offset, self.rng.choice([0, 1, 5, 15, 16, 17, 4096, self.value()]))

    def queue_entry(self) -> None:
        queue = self.queue()
        slot = self.rng.randrange(queue.size)
        entry = bytearray(self.rng.getrandbits(8) for _ in range(queue.sqe_size))
        if self.rng.random() < 0.5:  # plausible pointers make the device walk further
            for at in (8, 16, 24, 28, 36):
                entry[at:at + 8] = self.address().to_bytes(8, "little")
        self.qt.write(queue.sq_base + slot * queue.sqe_size, bytes(entry))
        self.ctrl.ring(L.sq_doorbell(queue.qid), (slot + 1) % queue.size)

    def hsm_command(self) -> None:
        if 1 not in self.ctrl.queues:
            return
        queue = self.ctrl.queues[1]
        fields = {k: self.rng.choice([v, self.value(), self.address()])
                  for k, v in (("src_len", 14), ("dst_len", 8192))}
        entry = L.HsmSqe(L.HsmSqe.command_word(self.rng.choice([0, 0, 1, 2, 0x3FF]), self.rng.randrange(16),
                                               cmdset=self.rng.choice([0, 0, 0, 1])),
                         fields["src_len"] & 0xFFFF_FFFF, self.address(), self.address(),
                         fields["dst_len"] & 0xFFFF_FFFF, self.address(), self.address(),
                         self.rng.getrandbits(8), self.rng.getrandbits(16))
        slot = queue.sq_tail
        self.qt.write(queue.sq_base + slot * queue.sqe_size, entry.pack())
        queue.sq_tail = (slot + 1) % queue.size
        self.ctrl.ring(L.sq_doorbell(1), queue.sq_tail)

    def admin_command(self) -> None:
        queue = self.ctrl.admin
        if queue is None:
            return
        opcode = self.rng.choice([0x00, 0x01, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A, 0xC3, 0xC4, self.value(8)])
        entry = L.AdminSqe(opcode & 0xFF, 0, self.rng.getrandbits(16), 0, self.address(), self.address(),
                           *(self.value() for _ in range(6)))
        slot = queue.sq_tail
        self.qt.write(queue.sq_base + slot * 64, entry.pack())
        queue.sq_tail = (slot + 1) % queue.size
        self.ctrl.ring(L.sq_doorbell(0), queue.sq_tail)

    def run(self, count: int) -> None:
        operations = [self.register_write, self.register_read, self.narrow_access, self.doorbell,
                      self.doorbell, self.queue_entry, self.hsm_command, self.hsm_command, self.admin_command]
        for index in range(count):
            operation = self.rng.choice(operations)
            operation()
            self.counts[operation.__name__] = self.counts.get(operation.__name__, 0) + 1
            if index % REPROBE_EVERY == REPROBE_EVERY - 1:
                self.reprobe()

    def reprobe(self) -> None:
        """A fresh bring-up, so later operations also hit an enabled controller with live queues."""
        try:
            self.ctrl.level2_reset()
        except ControllerError:
            self.ctrl.level2_reset()  # a random CC/NSSR write may race the first attempt
        self.counts["reprobe"] = self.counts.get("reprobe", 0) + 1


def test_random_operations_leave_qemu_alive_and_the_controller_usable(rig, reliability):
    fuzzer = Fuzzer(rig.ctrl, random.Random(SEED))
    fuzzer.run(OPERATIONS)
    rig.assert_alive()
    forwarded = len(rig.backend.requests)
    print(f"seed {SEED}: {fuzzer.counts}; {forwarded} requests reached the backend")
    assert forwarded > 0, "no random HSM command ever reached the backend: the fuzz stayed shallow"
    assert sum(n for op, n in fuzzer.counts.items() if op != "reprobe") == OPERATIONS
    rig.ctrl.level2_reset()
    rig.wait_link_up()
    result = rig.ctrl.hsm(GET_API_REV_REQUEST)
    assert result.cqe.status == 0 and result.cqe.byte_count == 58, (SEED, fuzzer.counts)
    rig.assert_alive()
    reliability.record("hostile guest (device)", "random register, doorbell, queue-entry, HSM and admin "
                       "operations", OPERATIONS, "QEMU alive; controller usable after a reset")
