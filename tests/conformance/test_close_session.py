"""Mirrors close_session.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

from tests.conformance.vendor import MAX_SESSIONS, Device, S, Setup, expect


def _open_then_close(device: Device) -> None:
    dev = device.open()
    device.establish(dev)
    sess_id = device.open_session(dev)
    assert dev.session_id == sess_id
    dev.close_session()
    assert dev.session_id is None and device.partition.vault.sessions.lookup(sess_id) is None


def test_open_session_simple(device: Device) -> None:
    _open_then_close(device)


def test_open_session_simple_repeat(device: Device) -> None:
    _open_then_close(device)


def test_close_session_no_session(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "CloseSession", {}, sess_id=None)


def test_close_session_incorrect_session_id(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "CloseSession", {}, sess_id=20)


def test_close_session(setup: Setup) -> None:
    setup.dev.close_session()
    assert setup.device.partition.vault.sessions.lookup(setup.session_id) is None


def test_close_session_multiple(setup: Setup) -> None:
    setup.dev.close_session()
    expect(S.FileHandleNoExistingSession, setup.dev.close_session)


def test_close_session_middle_session(setup: Setup) -> None:
    handles = [setup.device.open() for _ in range(MAX_SESSIONS - 1)]
    sessions = [setup.device.open_session(handle) for handle in handles]
    middle = handles[MAX_SESSIONS // 2]
    middle.close_session()
    assert setup.device.partition.vault.sessions.lookup(sessions[MAX_SESSIONS // 2]) is None
    assert setup.device.open_session(middle) is not None


def test_close_session_after_lm(setup: Setup) -> None:
    setup.device.nssr()
    setup.dev.close_session()
    assert setup.device.partition.vault.sessions.lookup(setup.session_id) is None
