"""Mirrors change_pin.rs of the vendor's DDI integration tests (docs/conformance.md). A tampered
request must fail and leave the old PIN in force."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from pyhsm.client import DdiError, HsmClient
from tests.conformance.vendor import CRED_ID, CRED_PIN, CRED_PIN_ALT, MAX_SESSIONS, Setup, encrypt_pin, flip


def _change(dev: HsmClient, new_pin: Any, pub: Any) -> None:
    dev.call("ChangePin", new_pin=new_pin, pub_key=pub)


def _opens(setup: Setup, pin: bytes) -> bool:
    """Whether a new file handle opens a session with ``pin`` (closed again at once)."""
    handle = setup.device.open()
    try:
        handle.open_session(CRED_ID, pin)
    except DdiError:
        return False
    handle.close_session()
    return True


def _tampered(setup: Setup, spoil: Any) -> None:
    new_pin, pub = encrypt_pin(setup.dev, CRED_PIN_ALT)
    new_pin, pub = spoil(new_pin, pub)
    with pytest.raises(DdiError):
        _change(setup.dev, new_pin, pub)
    assert _opens(setup, CRED_PIN)


def test_change_pin(setup: Setup) -> None:
    _change(setup.dev, *encrypt_pin(setup.dev, CRED_PIN_ALT))
    assert not _opens(setup, CRED_PIN)
    assert _opens(setup, CRED_PIN_ALT)
    _change(setup.dev, *encrypt_pin(setup.dev, CRED_PIN))


def test_change_pin_tampered_pin(setup: Setup) -> None:
    _tampered(setup, lambda p, k: (replace(p, encrypted_pin=flip(p.encrypted_pin, 10)), k))


def test_change_pin_tampered_iv(setup: Setup) -> None:
    _tampered(setup, lambda p, k: (replace(p, iv=flip(p.iv, 10)), k))


def test_change_pin_tampered_nonce(setup: Setup) -> None:
    _tampered(setup, lambda p, k: (replace(p, nonce=flip(p.nonce, 0)), k))


def test_change_pin_tampered_tag(setup: Setup) -> None:
    _tampered(setup, lambda p, k: (replace(p, tag=flip(p.tag, 10)), k))


def test_change_pin_tampered_pub_key(setup: Setup) -> None:
    _tampered(setup, lambda p, k: (p, replace(k, der=flip(k.der, 30))))


def test_change_pin_null_pin(setup: Setup) -> None:
    with pytest.raises(DdiError):
        _change(setup.dev, *encrypt_pin(setup.dev, bytes(16)))
    assert _opens(setup, CRED_PIN)


def test_change_pin_verify_nonce_change(setup: Setup) -> None:
    new_pin, pub = encrypt_pin(setup.dev, CRED_PIN_ALT)
    _change(setup.dev, new_pin, pub)
    assert encrypt_pin(setup.dev, CRED_PIN_ALT)[0].nonce != new_pin.nonce
    _change(setup.dev, *encrypt_pin(setup.dev, CRED_PIN))


def test_change_pin_verify_public_key_not_change(setup: Setup) -> None:
    """The device's session-encryption key stays the same across a PIN change."""
    before = setup.dev.get_session_encryption_key().pub_key
    _change(setup.dev, *encrypt_pin(setup.dev, CRED_PIN_ALT))
    assert setup.dev.get_session_encryption_key().pub_key == before
    _change(setup.dev, *encrypt_pin(setup.dev, CRED_PIN))


def test_change_pin_same_pin(setup: Setup) -> None:
    _change(setup.dev, *encrypt_pin(setup.dev, CRED_PIN))
    assert _opens(setup, CRED_PIN)
    assert not _opens(setup, CRED_PIN_ALT)


def test_change_pin_multiple(setup: Setup) -> None:
    """A request is good once: its nonce is used up."""
    new_pin, pub = encrypt_pin(setup.dev, CRED_PIN_ALT)
    _change(setup.dev, new_pin, pub)
    for _ in range(10):
        with pytest.raises(DdiError):
            _change(setup.dev, new_pin, pub)
    _change(setup.dev, *encrypt_pin(setup.dev, CRED_PIN))


def _single_winner(setup: Setup) -> None:
    """One encrypted PIN sent from 7 sessions at once: exactly one change succeeds."""
    handles = [setup.device.open() for _ in range(MAX_SESSIONS - 1)]
    for handle in handles:
        setup.device.open_session(handle)
    new_pin, pub = encrypt_pin(setup.dev, CRED_PIN_ALT)

    def attempt(handle: HsmClient) -> bool:
        try:
            _change(handle, new_pin, pub)
        except DdiError:
            return False
        return True

    with ThreadPoolExecutor(len(handles)) as pool:
        assert sum(pool.map(attempt, handles)) == 1
    _change(setup.dev, *encrypt_pin(setup.dev, CRED_PIN))
    for handle in handles:
        handle.close_session()


def test_change_pin_multi_threaded_single_winner_stress(setup: Setup) -> None:
    for _ in range(10):
        _single_winner(setup)


def test_change_pin_multi_threaded_single_winner(setup: Setup) -> None:
    _single_winner(setup)
