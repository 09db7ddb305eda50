"""Mirrors get_device_info.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

from pyhsm.protocol.ddi.optable import BY_NAME
from tests.conformance.vendor import Device, S, expect


def test_get_device_info(device: Device) -> None:
    info = device.open().get_device_info()
    assert info == BY_NAME["GetDeviceInfo"].response(kind=device.kind, tables=4, fips_approved=False)


def test_get_device_info_with_session(device: Device) -> None:
    dev = device.open()
    device.establish(dev)
    app = device.open()
    sess_id = device.open_session(app)
    expect(S.InvalidArg, dev.request, "GetDeviceInfo", {}, sess_id=sess_id)


def test_get_device_info_with_invalid_session(device: Device) -> None:
    expect(S.InvalidArg, device.open().request, "GetDeviceInfo", {}, sess_id=0x50, rev=None)


def test_get_device_info_with_invalid_rev(device: Device) -> None:
    expect(S.UnsupportedRevision, device.open().request, "GetDeviceInfo", {}, rev=(10, 0))
