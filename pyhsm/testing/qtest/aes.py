"""AES-queue commands as the guest driver builds them (docs/device.md, "AES path").

Buffers are placed at any byte offset in guest RAM and mapped one SGL data block per page (as
``dma_map_sg`` does for pinned user pages), or in smaller blocks to make long lists. Descriptor lists
live in page-aligned list pages of 255 data descriptors; slot 255 of a full page links to the next page
(a segment of 4096 bytes, or a last segment of the rest). GCM follows the client's convention: the
source is the AAD aligned to 32 bytes followed by the data; with the tail-buffer workaround the last
``len % 16`` bytes travel in a separate small buffer named in the SQE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyhsm.client.aes import align_aad
from pyhsm.protocol import layout as L
from pyhsm.testing.qtest.controller import COMMAND_TIMEOUT_S, Controller
from pyhsm.testing.qtest.memory import PAGE

DUL = {None: 0, 512: 1, 4096: 2, 8192: 3}


@dataclass
class Placement:
    """Guest memory held for one command; ``free`` gives it back."""

    ctrl: Controller
    allocations: list[tuple[int, int]] = field(default_factory=list)

    def alloc(self, size: int) -> int:
        addr = self.ctrl.memory.alloc(size)
        self.allocations.append((addr, size))
        return addr

    def buffer(self, data: bytes, *, offset: int = 0, chunk: int = PAGE) -> list[tuple[int, int]]:
        """Write ``data`` at ``offset`` into fresh pages; return its data blocks (split at page
        boundaries and every ``chunk`` bytes)."""
        base = self.alloc(offset + max(len(data), 1)) + offset
        if data:
            self.ctrl.qtest.write(base, data)
        blocks, pos = [], 0
        while pos < len(data):
            addr = base + pos
            n = min(chunk, PAGE - addr % PAGE, len(data) - pos)
            blocks.append((addr, n))
            pos += n
        return blocks

    def sgl(self, blocks: list[tuple[int, int]]) -> bytes:
        """List pages for ``blocks``; return the SQE descriptor (last segment if one page is enough)."""
        descriptors = [L.sgl_descriptor(a, n) for a, n in blocks]
        pages = [descriptors[i:i + L.SGL_PER_PAGE] for i in range(0, len(descriptors), L.SGL_PER_PAGE)] or [[]]
        addrs = [self.alloc(PAGE) for _ in pages]
        for i, (addr, page) in enumerate(zip(addrs, pages)):
            raw = b"".join(page)
            if i + 1 < len(pages):
                rest = len(pages[i + 1])
                more = i + 2 < len(pages)
                raw += L.sgl_descriptor(addrs[i + 1], PAGE if more else 16 * rest,
                                        L.SGL_SEGMENT if more else L.SGL_LAST_SEGMENT)
            if raw:
                self.ctrl.qtest.write(addr, raw)
        if len(pages) == 1:
            return L.sgl_descriptor(addrs[0], 16 * len(pages[0]), L.SGL_LAST_SEGMENT)
        return L.sgl_descriptor(addrs[0], PAGE, L.SGL_SEGMENT)

    def read(self, blocks: list[tuple[int, int]], length: int) -> bytes:
        out = bytearray()
        for addr, n in blocks:
            if len(out) >= length:
                break
            out += self.ctrl.qtest.read(addr, min(n, length - len(out)))
        return bytes(out)

    def free(self) -> None:
        for addr, size in self.allocations:
            self.ctrl.memory.free(addr, size)
        self.allocations.clear()


@dataclass(frozen=True)
class AesResult:
    cqe: L.AesCqe
    data: bytes        # GCM: the output after the aligned AAD, tail included; XTS: the output
    dst: bytes         # the destination SGL's bytes as the device left them (cqe.length of them)


def submit(ctrl: Controller, qid: int, sqe: L.AesSqe) -> None:
    ctrl.submit(ctrl.queues[qid], sqe.pack(), sqe.cid)


def wait(ctrl: Controller, qid: int, cid: int, timeout_s: float = COMMAND_TIMEOUT_S) -> L.AesCqe:
    return ctrl.wait(ctrl.queues[qid], cid, timeout_s)


def gcm(ctrl: Controller, qid: int = L.AES_FIRST_QID, *, key_id: int, data: bytes, iv: bytes, aad: bytes = b"",
        decrypt: bool = False, tag: bytes = bytes(16), session_id: int = 0, short_app_id: int = 0,
        workaround: bool = True, src_offset: int = 0, dst_offset: int = 0, chunk: int = PAGE,
        dst_extra: int = 0, cid: int | None = None, **overrides) -> AesResult:
    """One GCM command as the driver sends it; ``overrides`` replace SQE fields (``params`` too)."""
    aligned = align_aad(aad)
    src = aligned + data
    tail = len(src) % 16 if workaround else 0
    main, tail_bytes = src[:len(src) - tail], src[len(src) - tail:]
    mem = Placement(ctrl)
    try:
        src_blocks = mem.buffer(main, offset=src_offset, chunk=chunk)
        dst_blocks = mem.buffer(bytes(len(main) + dst_extra), offset=dst_offset, chunk=chunk)
        tail_addr = mem.alloc(PAGE) if tail else 0
        if tail:
            ctrl.qtest.write(tail_addr, tail_bytes)
        queue = ctrl.queues[qid]
        cid = queue.free_cid() if cid is None else cid
        fields = dict(attr=L.AesSqe.attr_word(decrypt=decrypt), cid=cid, session_id=session_id,
                      short_app_id=short_app_id, src_len=len(main), src_sgl=mem.sgl(src_blocks),
                      dst_len=len(main) + dst_extra, dst_sgl=mem.sgl(dst_blocks),
                      params=L.gcm_params(key_id, len(aad), tag, iv, len(aligned), tail, tail, tail_addr,
                                          tail_addr))
        fields.update(overrides)
        sqe = L.AesSqe(**fields)
        submit(ctrl, qid, sqe)
        cqe = wait(ctrl, qid, cid)
        dst = mem.read(dst_blocks, cqe.length)
        tail_out = ctrl.qtest.read(tail_addr, cqe.dst_tail_len) if tail and cqe.dst_tail_len else b""
        return AesResult(cqe, (dst + tail_out)[len(aligned):], dst)
    finally:
        mem.free()


def xts(ctrl: Controller, qid: int = L.AES_FIRST_QID, *, key_id1: int, key_id2: int, data: bytes, tweak: bytes,
        decrypt: bool = False, data_unit: int | None = None, session_id: int = 0, short_app_id: int = 0,
        src_offset: int = 0, dst_offset: int = 0, chunk: int = PAGE, cid: int | None = None,
        **overrides) -> AesResult:
    """One XTS command as the driver sends it; ``overrides`` replace SQE fields."""
    mem = Placement(ctrl)
    try:
        src_blocks = mem.buffer(data, offset=src_offset, chunk=chunk)
        dst_blocks = mem.buffer(bytes(len(data)), offset=dst_offset, chunk=chunk)
        queue = ctrl.queues[qid]
        cid = queue.free_cid() if cid is None else cid
        fields = dict(attr=L.AesSqe.attr_word(decrypt=decrypt, xts=True, dul=DUL[data_unit]), cid=cid,
                      session_id=session_id, short_app_id=short_app_id, src_len=len(data),
                      src_sgl=mem.sgl(src_blocks), dst_len=len(data), dst_sgl=mem.sgl(dst_blocks),
                      params=L.xts_params(key_id1, key_id2, tweak))
        fields.update(overrides)
        submit(ctrl, qid, L.AesSqe(**fields))
        cqe = wait(ctrl, qid, cid)
        dst = mem.read(dst_blocks, cqe.length)
        return AesResult(cqe, dst, dst)
    finally:
        mem.free()
