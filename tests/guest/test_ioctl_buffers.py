"""The ioctl transport's user buffers, checked on the host: what the driver reads at a source's address
is the data, and what it writes at a destination's address is what the caller gets back. The real
driver reads and writes them in the real-guest tests (tests/e2e)."""

from __future__ import annotations

import ctypes

import pytest

from pyhsm.client import ioctl_transport as it


@pytest.mark.parametrize("data", [b"\x01\x02", bytes(range(256)) * 40, bytearray(b"abc"), memoryview(b"xyz!")])
def test_the_source_address_holds_the_data(data):
    held, address = it._source(data)
    assert held is not None and ctypes.string_at(address, len(data)) == bytes(data)


def test_an_empty_source_has_no_address():
    assert it._source(b"") == (None, 0)


@pytest.mark.parametrize("n", [2, 4096, it.FILLED_BELOW - 1, it.FILLED_BELOW, 1 << 20])
def test_what_is_written_at_the_destination_is_the_result(n):
    out, address = it._destination(n)
    other, other_address = it._destination(n)
    assert other is not out and other_address != address   # each destination is an object of its own
    written = bytes((i * 7) & 0xFF for i in range(n))
    ctypes.memmove(address, written, n)
    assert bytes(out) == written
