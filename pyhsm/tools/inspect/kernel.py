"""The guest kernel seen from its physical memory: address translation, processes, the printk log.

Needs the guest booted with ``nokaslr`` (``pyhsm run --debug`` adds it): the image then sits at its
link address, so kernel-image addresses translate by subtraction (plus ``phys_base``, read from
memory) and the direct map starts at ``page_offset_base`` (read from memory; 4- or 5-level paging).
Other kernel addresses (vmalloc) go through a page-table walk; its root is the page directory of
any user process (every one maps the kernel half), found on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from pyhsm.tools.inspect.memory import PhysicalMemory, UnmappedAddress

START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000
LA57_PAGE_OFFSET = 0xFF11_0000_0000_0000
PTE_PRESENT, PTE_HUGE = 1, 1 << 7
PTE_ADDR = 0x000F_FFFF_FFFF_F000
MAX_TASKS = 32768
DESC_COMMITTED, DESC_FINALIZED = 1, 2


class KernelError(RuntimeError):
    """The memory does not look like the profiled kernel (KASLR on, wrong kernel, not booted)."""


@dataclass(frozen=True)
class Process:
    pid: int
    tgid: int
    ppid: int
    comm: str
    kernel_thread: bool
    state: int


@dataclass(frozen=True)
class LogRecord:
    seq: int
    ts_ns: int
    text: str


class Kernel:
    """``memory`` interpreted with ``profile`` (see ``pyhsm.tools.inspect.profile``)."""

    def __init__(self, memory: PhysicalMemory, profile: dict[str, Any]) -> None:
        self.memory = memory
        self.sym = {k: int(v, 16) for k, v in profile["symbols"].items()}
        self.off = profile["offsets"]
        self.size = profile["sizes"]
        self.phys_base = memory.u64(self.sym["phys_base"] - START_KERNEL_MAP)
        self.page_offset = self.u64(self.sym["page_offset_base"])
        comm = self.read(self.sym["init_task"] + self.off["task_struct.comm"], 16)
        if not comm.startswith(b"swapper"):
            raise KernelError("init_task is not where the profile says: is the guest booted with "
                              f"nokaslr and is this its kernel? (comm {comm!r}, phys_base "
                              f"0x{self.phys_base:x})")
        self.levels = 5 if self.page_offset == LA57_PAGE_OFFSET else 4
        self._pgd_phys: int | None = None

    # -- addresses ---------------------------------------------------------------------------------

    def to_phys(self, va: int) -> int:
        """Guest-physical address of kernel virtual address ``va``."""
        try:
            return self._direct(va)
        except UnmappedAddress:
            return self.walk(va)

    def _direct(self, va: int) -> int:
        """Physical address of a kernel-image or direct-map address (no page walk)."""
        if va >= START_KERNEL_MAP:
            return va - START_KERNEL_MAP + self.phys_base
        if self.page_offset <= va < self.page_offset + (1 << 46):
            return va - self.page_offset
        raise UnmappedAddress(f"0x{va:x} is neither in the kernel image nor in the direct map")

    @property
    def pgd_phys(self) -> int:
        """The kernel page-table root: the first user process's ``mm->pgd`` (direct-mapped)."""
        if self._pgd_phys is None:
            tasks_at, mm_at = self.off["task_struct.tasks"], self.off["task_struct.mm"]
            head = self.sym["init_task"] + tasks_at
            node = self.memory.u64(self._direct(head))
            for _ in range(MAX_TASKS):
                if node == head:
                    break
                mm = self.memory.u64(self._direct(node - tasks_at + mm_at))
                if mm:
                    self._pgd_phys = self._direct(self.memory.u64(self._direct(mm + self.off["mm_struct.pgd"])))
                    return self._pgd_phys
                node = self.memory.u64(self._direct(node))
            raise KernelError("no user process, so no page-table root: only kernel-image and "
                              "direct-map addresses can be translated")
        return self._pgd_phys

    def walk(self, va: int) -> int:
        """Translate through the kernel page tables (4 KiB, 2 MiB and 1 GiB pages)."""
        table = self.pgd_phys
        for level in range(self.levels, 0, -1):
            shift = 12 + 9 * (level - 1)
            entry = self.memory.u64(table + ((va >> shift) & 0x1FF) * 8)
            if not entry & PTE_PRESENT:
                raise UnmappedAddress(f"0x{va:x} is not mapped (level {level} entry 0x{entry:x})")
            if level == 1 or (level in (2, 3) and entry & PTE_HUGE):
                return (entry & PTE_ADDR & ~((1 << shift) - 1)) | (va & ((1 << shift) - 1))
            table = entry & PTE_ADDR
        raise AssertionError("unreachable")

    def read(self, va: int, size: int) -> bytes:
        out = bytearray()
        while size:
            chunk = min(size, 4096 - (va & 0xFFF))
            out += self.memory.read(self.to_phys(va), chunk)
            va, size = va + chunk, size - chunk
        return bytes(out)

    def u64(self, va: int) -> int:
        return int.from_bytes(self.read(va, 8), "little")

    def u32(self, va: int) -> int:
        return int.from_bytes(self.read(va, 4), "little")

    # -- processes ---------------------------------------------------------------------------------

    def processes(self) -> list[Process]:
        """Every task on ``init_task.tasks`` (thread-group leaders), init_task first."""
        tasks_at = self.off["task_struct.tasks"]
        head = self.sym["init_task"] + tasks_at
        found, node = [], head
        for _ in range(MAX_TASKS):
            task = node - tasks_at
            found.append(self._process(task))
            node = self.u64(node)
            if node == head:
                return found
        raise KernelError(f"the task list does not close after {MAX_TASKS} entries")

    def _process(self, task: int) -> Process:
        o = self.off
        parent = self.u64(task + o["task_struct.real_parent"])
        return Process(
            pid=self.u32(task + o["task_struct.pid"]), tgid=self.u32(task + o["task_struct.tgid"]),
            ppid=self.u32(parent + o["task_struct.pid"]) if parent else 0,
            comm=self.read(task + o["task_struct.comm"], 16).split(b"\0")[0].decode("utf-8", "replace"),
            kernel_thread=self.u64(task + o["task_struct.mm"]) == 0,
            state=self.u32(task + o["task_struct.__state"]))

    # -- kernel log --------------------------------------------------------------------------------

    def log(self) -> list[LogRecord]:
        """The printk ring's committed records in sequence order (the static ring: no log_buf_len=)."""
        o, ring = self.off, self.sym["printk_rb_static"]
        count = 1 << self.u32(ring + o["printk_ringbuffer.desc_ring.count_bits"])
        descs = self.u64(ring + o["printk_ringbuffer.desc_ring.descs"])
        infos = self.u64(ring + o["printk_ringbuffer.desc_ring.infos"])
        data_size = 1 << self.u32(ring + o["printk_ringbuffer.text_data_ring.size_bits"])
        data = self.read(self.u64(ring + o["printk_ringbuffer.text_data_ring.data"]), data_size)
        desc_table = self.read(descs, count * self.size["prb_desc"])
        info_table = self.read(infos, count * self.size["printk_info"])
        records = []
        for index in range(count):
            desc = desc_table[index * self.size["prb_desc"]:]
            state_var = int.from_bytes(desc[o["prb_desc.state_var"]:][:8], "little")
            if state_var >> 62 not in (DESC_COMMITTED, DESC_FINALIZED):
                continue
            begin = int.from_bytes(desc[o["prb_desc.text_blk_lpos.begin"]:][:8], "little")
            end = int.from_bytes(desc[o["prb_desc.text_blk_lpos.next"]:][:8], "little")
            info = info_table[index * self.size["printk_info"]:]
            length = int.from_bytes(info[o["printk_info.text_len"]:][:2], "little")
            if begin & 1 or end & 1 or not length:   # a data-less record
                continue
            start = begin % data_size
            if end % data_size <= start and end % data_size:   # the block wrapped: text is at 0
                start = 0
            text = data[start + 8:start + 8 + length]
            records.append(LogRecord(
                seq=int.from_bytes(info[o["printk_info.seq"]:][:8], "little"),
                ts_ns=int.from_bytes(info[o["printk_info.ts_nsec"]:][:8], "little"),
                text=text.decode("utf-8", "replace")))
        return sorted(records, key=lambda r: r.seq)

    def dmesg(self) -> Iterator[str]:
        for record in self.log():
            yield f"[{record.ts_ns / 1e9:12.6f}] {record.text}"
