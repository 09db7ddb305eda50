"""Mirrors ddi_dev_info.rs of the vendor's DDI integration tests (docs/conformance.md): the vendor
test lists the devices and logs their versions; here, the device answers as a device at all."""

from __future__ import annotations

from tests.conformance.vendor import Device


def test_ddi_dev_info(device: Device) -> None:
    assert device.open().get_device_info().kind == device.kind
