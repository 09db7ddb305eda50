"""A test-side driver for the azihsm controller that behaves as the guest driver does.

It follows docs/guest-driver.md, "Design" and "Timeouts, aborts, resets": the enable sequence, the probe-time admin sequence,
host-side phase and head tracking (SQ head taken from each CQE's ``sqhd``; docs/device.md, "Queue entry formats"), the
SQ-full rule, HSM submissions through PRPs (two 4 KiB bounce pages per direction), level-1 abort
(delete and recreate the SQ, keep the CQ) and level-2 reset (CC.EN or NSSR, then a full re-probe on
new queue memory). Interrupts are observed through the MSI-X words set up by ``pci.Msix``.

While it waits for a completion it advances QEMU's virtual clock in step with real time, so device
timers behave as on a running guest whichever clock the device uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pyhsm.protocol import layout as L
from pyhsm.testing.qtest.memory import PAGE, GuestMemory
from pyhsm.testing.qtest.pci import Bar, Msix, PciConfig, PciFunction, find_function
from pyhsm.testing.qtest.protocol import Qtest

ADMIN_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 10.0
CLOCK_STEP_AFTER_S = 0.001


class ControllerError(Exception):
    """The controller did not behave as the driver requires (probe would fail)."""


class ControllerFatal(ControllerError):
    """CSTS.CFS was set while the driver waited for the controller."""


class QueueFull(ControllerError):
    """The SQ-full rule holds: ``sqhd`` from the last CQE equals ``(tail + 1) % size``."""


class CompletionTimeout(ControllerError):
    """No completion arrived in time."""


@dataclass
class Queue:
    """Host view of one SQ/CQ pair (CQ id == SQ id)."""

    qid: int
    size: int
    sq_base: int
    cq_base: int
    sqe_size: int
    cqe_type: type
    vector: int
    sq_tail: int = 0
    sq_head: int = 0
    cq_head: int = 0
    phase: int = 0  # host phase: an entry is new when its P bit differs
    outstanding: set[int] = field(default_factory=set)
    stashed: dict[int, object] = field(default_factory=dict)  # cid -> CQE reaped while waiting for another

    @property
    def cqe_size(self) -> int:
        return self.cqe_type.LAYOUT.size

    def full(self) -> bool:
        return self.sq_head == (self.sq_tail + 1) % self.size

    def free_cid(self) -> int:
        """Lowest free host tag in 0..size-2."""
        for cid in range(self.size - 1):
            if cid not in self.outstanding:
                return cid
        raise QueueFull(f"queue {self.qid}: all {self.size - 1} tags outstanding")


@dataclass(frozen=True)
class HsmResult:
    cqe: L.HsmCqe
    payload: bytes


@dataclass
class _Buffers:
    src: tuple[int, int]
    dst: tuple[int, int]


def open_controller(qtest: Qtest, *, hsm_slots: int = 16, aes_slots: int = 16) -> Controller:
    """Find the azihsm function, place its BARs, enable it and set up MSI-X (no controller access yet)."""
    config = PciConfig(qtest)
    function = find_function(config, L.VENDOR_ID, L.DEVICE_ID)
    bars = function.assign_bars()
    function.enable()
    memory = GuestMemory(qtest)
    msix = Msix(function, bars, memory)
    msix.setup()
    return Controller(qtest, function, bars, msix, memory, hsm_slots=hsm_slots, aes_slots=aes_slots)


class Controller:
    """The driver. ``probe()`` brings the controller up; HSM commands go through ``submit_hsm``."""

    def __init__(self, qtest: Qtest, function: PciFunction, bars: dict[int, Bar], msix: Msix,
                 memory: GuestMemory, *, hsm_slots: int = 16, aes_slots: int = 16) -> None:
        self.qtest = qtest
        self.function = function
        self.bars = bars
        self.msix = msix
        self.memory = memory
        self.hsm_slots = hsm_slots
        self.aes_slots = aes_slots
        self.regs = bars[0].address
        self.doorbells = bars[2].address
        self.admin: Queue | None = None
        self.queues: dict[int, Queue] = {}
        self.identify_data: L.Identify | None = None
        self.admin_log: list[tuple[L.AdminSqe, L.AdminCqe]] = []
        self._buffers: dict[tuple[int, int], _Buffers] = {}
        self._next_admin_cid = 0

    def rebind(self, qtest: Qtest) -> None:
        """Follow the guest to a migration destination: the same queues, buffers and MSI-X
        messages, now reached through the destination's qtest channel (docs/device.md, "Migration")."""
        self.qtest = qtest
        self.function.config.qtest = qtest
        self.msix.qtest = qtest
        self.memory._qtest = qtest

    # ---- registers -------------------------------------------------------------------------------
    def read32(self, offset: int) -> int:
        return self.qtest.readl(self.regs + offset)

    def write32(self, offset: int, value: int) -> None:
        self.qtest.writel(self.regs + offset, value)

    def read64(self, offset: int) -> int:
        return self.qtest.readq(self.regs + offset)

    def write64(self, offset: int, value: int) -> None:
        self.qtest.writeq(self.regs + offset, value)

    def ring(self, offset: int, value: int) -> None:
        """Write a BAR2 doorbell."""
        self.qtest.writel(self.doorbells + offset, value)

    @property
    def cap(self) -> L.Cap:
        return L.Cap(self.read64(L.CAP))

    def csts(self) -> int:
        return self.read32(L.CSTS)

    def wait_ready(self, enabled: bool) -> None:
        """The driver's ready poll: busy loop bounded by (CAP.TO + 1) * 500 ms. The virtual clock advances
        in step with real time meanwhile, as the guest's own clock would (the device's
        ``ready-timeout-ms`` runs on it)."""
        stepped = time.monotonic()
        deadline = stepped + (self.cap.to + 1) * 0.5
        while True:
            csts = self.csts()
            if csts == 0xFFFF_FFFF:
                raise ControllerError("CSTS reads all ones: device gone")
            if bool(csts & L.CSTS_RDY) == enabled:
                if csts & L.CSTS_CFS:
                    raise ControllerFatal(f"CSTS.CFS set (CSTS={csts:#x})")
                return
            now = time.monotonic()
            if now > deadline:
                raise ControllerError(f"CSTS.RDY did not become {int(enabled)} (CSTS={csts:#x})")
            if now - stepped >= CLOCK_STEP_AFTER_S:
                self.qtest.clock_step(int((now - stepped) * 1e9))
                stepped = now

    # ---- enable / disable / reset ----------------------------------------------------------------
    def disable(self) -> None:
        """CC.EN = 0 and wait for RDY = 0: a controller reset; every queue is gone."""
        self.write32(L.CC, self.read32(L.CC) & ~L.CC_EN)
        self.wait_ready(False)
        self._forget_queues()

    def nssr(self) -> None:
        """NVM subsystem reset: write "NVMe" to NSSR and wait for RDY = 0."""
        self.write32(L.NSSR, L.NSSR_MAGIC)
        self.wait_ready(False)
        self._forget_queues()

    def enable(self) -> None:
        """The enable sequence of 2.1 with newly allocated admin queues."""
        if self.csts() & L.CSTS_RDY or self.read32(L.CC) & L.CC_EN:
            self.disable()
        self.read32(L.AQA)
        self.write32(L.AQA, L.AQA_ADMIN)
        old = self.admin
        self.admin = self._new_queue(0, L.ADMIN_QUEUE_ENTRIES, 64, L.AdminCqe, vector=0)
        if old:
            self._free_queue(old)
        self.write64(L.ASQ, self.admin.sq_base)
        self.write64(L.ACQ, self.admin.cq_base)
        self.write32(L.CC, self.read32(L.CC) | L.CC_EN)
        self.wait_ready(True)
        self.read32(L.VS)

    def probe(self) -> None:
        """Full bring-up (docs/guest-driver.md, "Design"; VF mode): enable, Identify, CC entry sizes, HSM and AES queues, 0xC2."""
        self.enable()
        self.identify_data = self.identify()
        if not self.identify_data.entry_sizes_ok():
            raise ControllerError(f"Identify entry sizes rejected: {self.identify_data}")
        self.write32(L.CC, self.read32(L.CC) | L.CC_ENTRY_SIZES)
        n = self._queue_count(L.Feature.HSM_QUEUE_COUNT)
        if n == 0:
            raise ControllerError("Set Features 0x07 granted no HSM queue")
        hsm_vectors = min((self.msix.vectors - 1) // 2, n)
        for i in range(n):
            self.create_queue(L.HSM_FIRST_QID + i, self.hsm_slots, L.HSM_FIRST_VECTOR + i % hsm_vectors)
        m = self._queue_count(L.Feature.AES_QUEUE_COUNT)
        aes_vectors = min(self.msix.vectors // 2, m)
        for i in range(m):
            self.create_queue(L.AES_FIRST_QID + i, self.aes_slots, L.AES_FIRST_VECTOR + i % aes_vectors)
        self.admin_command(L.AdminOpcode.GET_FEATURES, dw10=L.Feature.FIRMWARE_CAPABILITIES, check=False)

    def level2_reset(self, via_nssr: bool = False) -> None:
        """Level-2 abort: CC.EN = 0 (or NSSR), then the complete probe on new memory, no Delete commands."""
        if via_nssr:
            self.nssr()
        else:
            self.disable()
        self.probe()

    def _queue_count(self, feature: L.Feature) -> int:
        dw0 = self.admin_command(L.AdminOpcode.SET_FEATURES, dw10=feature, dw11=L.QUEUE_COUNT_REQUEST).dw0
        return (min(dw0 & 0xFFFF, dw0 >> 16) + 1) & 0xFFFF

    def _forget_queues(self) -> None:
        for queue in self.queues.values():
            self._free_queue(queue)
        self.queues.clear()

    # ---- queue memory ----------------------------------------------------------------------------
    def _new_queue(self, qid: int, size: int, sqe_size: int, cqe_type: type, vector: int) -> Queue:
        sq = self.memory.alloc(size * sqe_size)
        cq = self.memory.alloc(size * cqe_type.LAYOUT.size)
        return Queue(qid, size, sq, cq, sqe_size, cqe_type, vector)

    def _free_queue(self, queue: Queue) -> None:
        self.memory.free(queue.sq_base, queue.size * queue.sqe_size)
        self.memory.free(queue.cq_base, queue.size * queue.cqe_size)

    @staticmethod
    def entry_formats(qid: int) -> tuple[int, type]:
        """SQE size and CQE type of a qid: 0 admin, 1..255 HSM, 256+ AES."""
        if qid == 0:
            return 64, L.AdminCqe
        return (64, L.HsmCqe) if qid < L.AES_FIRST_QID else (128, L.AesCqe)

    # ---- submission and completion ---------------------------------------------------------------
    def submit(self, queue: Queue, entry: bytes, cid: int) -> None:
        """Write one SQE at the tail and ring the SQ doorbell; raises ``QueueFull``."""
        if queue.full():
            raise QueueFull(f"queue {queue.qid}: head {queue.sq_head}, tail {queue.sq_tail}")
        self.qtest.write(queue.sq_base + queue.sq_tail * queue.sqe_size, entry)
        queue.sq_tail = (queue.sq_tail + 1) % queue.size
        queue.outstanding.add(cid)
        self.ring(L.sq_doorbell(queue.qid), queue.sq_tail)

    def reap(self, queue: Queue, ring: bool = True):
        """Consume the next CQE if the device posted one (phase differs): advance head, take sqhd, and
        (unless ``ring`` is False, to hold CQ space back from the device) ring the CQ head doorbell."""
        raw = self.qtest.read(queue.cq_base + queue.cq_head * queue.cqe_size, queue.cqe_size)
        cqe = queue.cqe_type.unpack(raw)
        if cqe.phase == queue.phase:
            return None
        queue.cq_head += 1
        if queue.cq_head == queue.size:
            queue.cq_head, queue.phase = 0, queue.phase ^ 1
        if ring:
            self.ring(L.cq_doorbell(queue.qid), queue.cq_head)
        queue.sq_head = cqe.sqhd
        queue.outstanding.discard(cqe.cid)
        return cqe

    def wait(self, queue: Queue, cid: int, timeout_s: float = COMMAND_TIMEOUT_S):
        """The CQE for ``cid``; CQEs for other tags that arrive first are stashed for their waiters."""
        if cid in queue.stashed:
            return queue.stashed.pop(cid)
        deadline = time.monotonic() + timeout_s
        stepped = time.monotonic()
        while True:
            cqe = self.reap(queue)
            if cqe is not None:
                if cqe.cid == cid:
                    return cqe
                queue.stashed[cqe.cid] = cqe
                continue
            now = time.monotonic()
            if now > deadline:
                raise CompletionTimeout(f"queue {queue.qid}: no completion for cid {cid} in {timeout_s} s"
                                        f" (CSTS={self.csts():#x})")
            if now - stepped >= CLOCK_STEP_AFTER_S:
                self.qtest.clock_step(int((now - stepped) * 1e9))
                stepped = now

    def admin_command(self, opcode: int, *, prp1: int = 0, prp2: int = 0, dw10: int = 0, dw11: int = 0,
                      dw12: int = 0, flags: int = 0, check: bool = True) -> L.AdminCqe:
        """Submit one admin command and wait for it; ``check`` raises on a nonzero status."""
        assert self.admin is not None, "enable() first"
        cid = self._next_admin_cid
        self._next_admin_cid = (cid + 1) & 0xFFFF
        sqe = L.AdminSqe(opcode, flags, cid, prp1=prp1, prp2=prp2, dw10=dw10, dw11=dw11, dw12=dw12)
        self.submit(self.admin, sqe.pack(), cid)
        cqe = self.wait(self.admin, cid, ADMIN_TIMEOUT_S)
        self.admin_log.append((sqe, cqe))
        if check and cqe.status:
            raise ControllerError(f"admin opcode {opcode:#x} failed with status {cqe.status:#x}")
        return cqe

    # ---- admin commands --------------------------------------------------------------------------
    def identify(self, cns: int = L.CNS_CONTROLLER) -> L.Identify:
        page = self.memory.alloc(PAGE)
        try:
            self.admin_command(L.AdminOpcode.IDENTIFY, prp1=page, dw10=cns)
            return L.Identify.unpack(self.qtest.read(page, L.Identify.LAYOUT.size))
        finally:
            self.memory.free(page, PAGE)

    def create_queue(self, qid: int, size: int, vector: int, *, check: bool = True) -> Queue:
        """Create CQ then SQ (CQID = qid), as the driver does; raises ``ControllerError`` on failure."""
        sqe_size, cqe_type = self.entry_formats(qid)
        queue = self._new_queue(qid, size, sqe_size, cqe_type, vector)
        cq = self.admin_command(L.AdminOpcode.CREATE_CQ, prp1=queue.cq_base,
                                dw10=qid | (size - 1) << 16, dw11=0b11 | vector << 16, check=check)
        if cq.status:
            self._free_queue(queue)
            raise ControllerError(f"Create CQ {qid} failed with status {cq.status:#x}")
        self._create_sq(queue)
        self.queues[qid] = queue
        return queue

    def _create_sq(self, queue: Queue) -> None:
        priority = 3 if queue.qid % 2 == 0 else 1
        self.admin_command(L.AdminOpcode.CREATE_SQ, prp1=queue.sq_base,
                           dw10=queue.qid | (queue.size - 1) << 16,
                           dw11=1 | priority << 1 | queue.qid << 16)

    def delete_queue(self, qid: int) -> None:
        """Delete SQ then CQ, as on remove."""
        self.admin_command(L.AdminOpcode.DELETE_SQ, dw10=qid)
        self.admin_command(L.AdminOpcode.DELETE_CQ, dw10=qid)
        self._free_queue(self.queues.pop(qid))

    def level1_abort(self, qid: int) -> dict[int, object | None]:
        """Delete SQ q, take the completions it produced, then Create SQ q on the same memory, size and CQ.

        Returns each abandoned tag with the CQE the device posted for it on deletion (or None).
        """
        queue = self.queues[qid]
        self.admin_command(L.AdminOpcode.DELETE_SQ, dw10=qid)
        abandoned: dict[int, object | None] = dict.fromkeys(queue.outstanding)
        abandoned.update((cid, queue.stashed.pop(cid)) for cid in list(queue.stashed) if cid in abandoned)
        while (cqe := self.reap(queue)) is not None:
            abandoned[cqe.cid] = cqe
        queue.outstanding.clear()
        queue.sq_tail = queue.sq_head = 0
        self._create_sq(queue)
        return abandoned

    # ---- HSM commands ----------------------------------------------------------------------------
    def buffers(self, qid: int, cid: int) -> _Buffers:
        """The two source and two destination bounce pages of one host tag."""
        key = (qid, cid)
        if key not in self._buffers:
            src, dst = self.memory.alloc(2 * PAGE), self.memory.alloc(2 * PAGE)
            self._buffers[key] = _Buffers((src, src + PAGE), (dst, dst + PAGE))
        return self._buffers[key]

    def submit_hsm(self, qid: int, request: bytes, *, session_flags: int = 0, session_id: int = 0,
                   opc: int = 0, dst_len: int = L.MAX_TRANSFER, cid: int | None = None, **overrides: int) -> int:
        """Copy ``request`` into the tag's source pages and submit the SQE; return the CID.

        ``overrides`` replace any computed SQE field (src_len, src_prp1, ... , dw0) to build bad input.
        """
        queue = self.queues[qid]
        cid = queue.free_cid() if cid is None else cid
        buffers = self.buffers(qid, cid)
        for page, chunk in zip(buffers.src, (request[:PAGE], request[PAGE:2 * PAGE])):
            if chunk:
                self.qtest.write(page, chunk)
        fields = dict(
            dw0=L.HsmSqe.command_word(opc, cid), src_len=len(request),
            src_prp1=buffers.src[0] if request else 0,
            src_prp2=buffers.src[1] if len(request) > PAGE else 0,
            dst_len=dst_len, dst_prp1=buffers.dst[0] if dst_len else 0,
            dst_prp2=buffers.dst[1] if dst_len > PAGE else 0,
            session_flags=session_flags, session_id=session_id)
        fields.update(overrides)
        self.submit(queue, L.HsmSqe(**fields).pack(), cid)
        return cid

    def wait_hsm(self, qid: int, cid: int, timeout_s: float = COMMAND_TIMEOUT_S) -> HsmResult:
        """Wait for the CQE and read ``byte_count`` response bytes from the destination pages."""
        cqe = self.wait(self.queues[qid], cid, timeout_s)
        dst = self.buffers(qid, cid).dst
        count = min(cqe.byte_count, L.MAX_TRANSFER)
        payload = b"".join(self.qtest.read(page, size) for page, size in
                           zip(dst, (min(count, PAGE), max(0, count - PAGE))) if size)
        return HsmResult(cqe, payload)

    def hsm(self, request: bytes, qid: int = L.HSM_FIRST_QID, **fields: int) -> HsmResult:
        """Submit one HSM command and wait for its completion."""
        return self.wait_hsm(qid, self.submit_hsm(qid, request, **fields))
