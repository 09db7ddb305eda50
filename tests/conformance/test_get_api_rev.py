"""Mirrors get_api_rev.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

from tests.conformance.vendor import Device, S, expect


def test_api_rev(device: Device) -> None:
    rev = device.open().get_api_rev()
    assert (rev.min.major, rev.min.minor, rev.max.major, rev.max.minor) == (1, 0, 1, 0)


def test_api_rev_with_session(device: Device) -> None:
    dev = device.open()
    device.establish(dev)
    sess_id = device.open_session(device.open())
    expect(S.InvalidArg, dev.request, "GetApiRev", {}, sess_id=sess_id, rev=None)


def test_api_rev_with_invalid_session(device: Device) -> None:
    expect(S.InvalidArg, device.open().request, "GetApiRev", {}, sess_id=0x50, rev=None)


def test_api_rev_with_invalid_rev(device: Device) -> None:
    expect(S.UnsupportedRevision, device.open().request, "GetApiRev", {}, rev=(1, 0))
