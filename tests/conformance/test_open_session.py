"""Mirrors open_session.rs of the vendor's DDI integration tests (docs/conformance.md): a freshly
reset device on which each test establishes the credential itself."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest

from pyhsm.client import DdiError, HsmClient
from pyhsm.protocol.ddi.schemas import SESSION_CREDENTIAL
from tests.conformance.credential_cases import expect_invalid_key, invalid_key
from tests.conformance.vendor import (
    CRED_ID,
    CRED_PIN,
    MAX_SESSIONS,
    Device,
    S,
    expect,
    flip,
    physical_only,
    session_credential,
)


def _established(device: Device) -> HsmClient:
    """helper_common_establish_credential, then the file handle the test works with."""
    dev = device.open()
    device.establish(dev)
    return dev


def _open(dev: HsmClient, cred: Any, pub: Any, **request: Any) -> Any:
    return dev.request("OpenSession", {"encrypted_credential": cred, "pub_key": pub}, **request)


def _tampered(device: Device, name: str, index: int) -> DdiError:
    dev = _established(device)
    cred, pub = session_credential(dev)
    with pytest.raises(DdiError) as info:
        _open(dev, replace(cred, **{name: flip(getattr(cred, name), index)}), pub)
    return info.value


def test_open_session_with_session(device: Device) -> None:
    dev = _established(device)
    expect(S.InvalidArg, _open, dev, *session_credential(dev), sess_id=25)


def test_open_session_without_revision(device: Device) -> None:
    dev = _established(device)
    expect(S.UnsupportedRevision, _open, dev, *session_credential(dev), rev=None)


def test_open_session(device: Device) -> None:
    dev = _established(device)
    opened = _open(dev, *session_credential(dev))
    assert dev.session_id == opened.sess_id and opened.bmk_session


def _invalid_point(device: Device, which: str) -> None:
    physical_only(device)
    dev = _established(device)
    expect_invalid_key(which, _open, dev, session_credential(dev)[0], invalid_key(which))


def test_open_session_invalid_public_key_p384_y_as_prime(device: Device) -> None:
    _invalid_point(device, "y")


def test_open_session_invalid_public_key_p384_x_as_prime(device: Device) -> None:
    _invalid_point(device, "x")


def test_open_session_invalid_public_key_p384_not_on_curve(device: Device) -> None:
    _invalid_point(device, "curve")


def test_open_session_invalid_public_key_p384_point_at_infinity(device: Device) -> None:
    _invalid_point(device, "infinity")


def test_open_session_without_get_key(device: Device) -> None:
    dev = _established(device)
    cred = SESSION_CREDENTIAL(encrypted_id=bytes(range(16)), encrypted_pin=bytes(range(16, 32)),
                              encrypted_seed=bytes([2]) * 48, iv=bytes(range(32, 48)),
                              nonce=(2187282822).to_bytes(4, "little") + bytes(28), tag=bytes([29]) * 48)
    with pytest.raises(DdiError):
        _open(dev, cred, session_credential(device.open())[1])


def test_open_session_multiple(device: Device) -> None:
    dev = _established(device)
    cred, pub = session_credential(dev)
    assert _open(dev, cred, pub).bmk_session
    for _ in range(10):
        with pytest.raises(DdiError):
            _open(dev, cred, pub)


def test_open_session_multiple_get_key(device: Device) -> None:
    dev = _established(device)
    _open(dev, *session_credential(dev))
    for _ in range(10):
        expect(S.FileHandleSessionLimitReached, _open, dev, *session_credential(dev))


def test_open_session_tamper_id(device: Device) -> None:
    assert _tampered(device, "encrypted_id", 10).status is S.PinDecryptionFailed


def test_open_session_tamper_pin(device: Device) -> None:
    assert _tampered(device, "encrypted_pin", 10).status is S.PinDecryptionFailed


def test_open_session_tamper_iv(device: Device) -> None:
    assert _tampered(device, "iv", 10).status is S.PinDecryptionFailed


def test_open_session_tamper_nonce(device: Device) -> None:
    assert _tampered(device, "nonce", 0).status is S.NonceMismatch


def test_open_session_tamper_tag(device: Device) -> None:
    assert _tampered(device, "tag", 10).status is S.PinDecryptionFailed


def test_open_session_tamper_pub_key(device: Device) -> None:
    dev = _established(device)
    cred, pub = session_credential(dev)
    with pytest.raises(DdiError):
        _open(dev, cred, replace(pub, der=flip(pub.der, 30)))


def test_open_session_null_id(device: Device) -> None:
    dev = _established(device)
    expect(S.InvalidAppCredentials, _open, dev, *session_credential(dev, bytes(16), CRED_PIN))


def test_open_session_null_pin(device: Device) -> None:
    dev = _established(device)
    expect(S.InvalidAppCredentials, _open, dev, *session_credential(dev, CRED_ID, bytes(16)))


def test_open_session_verify_nonce_change(device: Device) -> None:
    dev = _established(device)
    cred, pub = session_credential(dev)
    _open(dev, cred, pub)
    assert session_credential(dev)[0].nonce != cred.nonce


def test_open_session_verify_public_key_not_change(device: Device) -> None:
    """The device's session-encryption key stays the same after a session is opened."""
    dev = _established(device)
    before = dev.get_session_encryption_key().pub_key
    _open(dev, *session_credential(dev))
    assert dev.get_session_encryption_key().pub_key == before


def _attempt(dev: HsmClient, tries: int) -> bool:
    """Open a session, retrying NonceMismatch (logins racing for the nonce); False on another error."""
    for _ in range(tries):
        try:
            _open(dev, *session_credential(dev))
            return True
        except DdiError as err:
            if err.status is not S.NonceMismatch:
                return False
    return False


def test_open_session_multi_threaded_all_should_open(device: Device) -> None:
    """12 handles at once: the 8 session slots fill, the other 4 fail."""
    _established(device)
    handles = [device.open() for _ in range(MAX_SESSIONS + 4)]
    with ThreadPoolExecutor(len(handles)) as pool:
        results = list(pool.map(lambda dev: _attempt(dev, 4 * len(handles)), handles))
    assert sum(results) == MAX_SESSIONS


def test_open_session_null_id_then_proper_id(device: Device) -> None:
    dev = _established(device)
    cred, pub = session_credential(dev, bytes(16), CRED_PIN)
    expect(S.InvalidAppCredentials, _open, dev, cred, pub)
    proper = session_credential(dev)
    assert proper[0].nonce != cred.nonce
    assert _open(dev, *proper).bmk_session


def test_open_session_with_reset_in_middle(device: Device) -> None:
    dev = _established(device)
    _open(dev, *session_credential(dev))
    device.nssr()
    device.flush(dev)
    dev = _established(device)
    assert _open(dev, *session_credential(dev)).bmk_session


def test_open_session_incorrect_id(device: Device) -> None:
    dev = _established(device)
    expect(S.InvalidAppCredentials, _open, dev, *session_credential(dev, bytes([1]) * 16, CRED_PIN))


def test_open_session_incorrect_pin(device: Device) -> None:
    dev = _established(device)
    expect(S.InvalidAppCredentials, _open, dev, *session_credential(dev, CRED_ID, bytes([1]) * 16))


def test_open_session_max_sessions(device: Device) -> None:
    _established(device)
    for _ in range(MAX_SESSIONS):
        dev = device.open()
        assert _open(dev, *session_credential(dev)).bmk_session
    dev = device.open()
    expect(S.VaultSessionLimitReached, _open, dev, *session_credential(dev))


def test_open_session_multi_threaded_single_winner(device: Device) -> None:
    """One sealed credential sent from 16 handles at once: one session opens."""
    cred, pub = session_credential(_established(device))
    handles = [device.open() for _ in range(16)]

    def attempt(dev: HsmClient) -> bool:
        try:
            _open(dev, cred, pub)
        except DdiError:
            return False
        return True

    with ThreadPoolExecutor(len(handles)) as pool:
        assert sum(pool.map(attempt, handles)) == 1
