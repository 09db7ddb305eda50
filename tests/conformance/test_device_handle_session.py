"""Mirrors device_handle_session.rs of the vendor's DDI integration tests (docs/conformance.md): a
file handle on a freshly reset device, no credential set up by the harness."""

from __future__ import annotations

from tests.conformance.vendor import CRED_ID, CRED_PIN, Device, S, expect


def test_device_handle_session_no_session(device: Device) -> None:
    dev = device.open()
    expect(S.InvalidArg, dev.request, "GetApiRev", {}, sess_id=20, rev=None)
    assert dev.get_api_rev().max.major == 1


def test_device_handle_session_open_session_twice(device: Device) -> None:
    dev = device.open()
    device.establish(dev)
    opened = device.open_session(dev)
    assert dev.session_id == opened
    expect(S.FileHandleSessionLimitReached, dev.open_session, CRED_ID, CRED_PIN)
