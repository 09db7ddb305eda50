"""Guest RAM handed out in 4 KiB pages, as a driver's DMA allocator would (zeroed, page aligned)."""

from __future__ import annotations

from pyhsm.testing.qtest.protocol import Qtest

PAGE = 4096


class GuestMemory:
    """Pages of guest RAM in [base, limit); ``alloc`` zeroes what it returns."""

    def __init__(self, qtest: Qtest, base: int = 0x0100_0000, limit: int = 0x0F00_0000) -> None:
        self._qtest = qtest
        self._next = base
        self._limit = limit
        self._free: dict[int, list[int]] = {}

    def alloc(self, size: int) -> int:
        """Return the address of ``size`` bytes (rounded up to pages) of contiguous zeroed RAM."""
        pages = max(1, -(-size // PAGE))
        recycled = self._free.get(pages)
        if recycled:
            addr = recycled.pop()
        else:
            if self._next + pages * PAGE > self._limit:
                raise MemoryError(f"guest RAM window exhausted ({pages} pages requested)")
            addr, self._next = self._next, self._next + pages * PAGE
        self._qtest.memset(addr, pages * PAGE, 0)
        return addr

    def free(self, addr: int, size: int) -> None:
        """Give back an allocation made with the same ``size``."""
        self._free.setdefault(max(1, -(-size // PAGE)), []).append(addr)
