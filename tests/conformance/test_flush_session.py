"""Mirrors flush_session.rs of the vendor's DDI integration tests (docs/conformance.md): a session
left open when its file handle goes is flushed by the driver."""

from __future__ import annotations

from tests.conformance.vendor import Setup


def _open_and_flush(setup: Setup) -> None:
    handle = setup.device.open()
    sess_id = setup.device.open_session(handle)
    assert setup.device.partition.vault.sessions.lookup(sess_id) is not None
    setup.device.flush(handle)
    assert setup.device.partition.vault.sessions.lookup(sess_id) is None


def test_flush_app_session(setup: Setup) -> None:
    _open_and_flush(setup)


def test_flush_app_session_after_crash(setup: Setup) -> None:
    # the vendor expects its deliberate panic after a successful OpenSession (should_panic)
    _open_and_flush(setup)
