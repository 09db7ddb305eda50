"""Mirrors get_session_encryption_key.rs of the vendor's DDI integration tests (docs/conformance.md).
The ``_with_sig_verify`` variants also check, on a device that is not Virtual, the key's signature by
the partition-ID key."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from pyhsm.client import HsmClient
from tests.conformance.vendor import Device, S, expect, key_signature_ok

OP = "GetSessionEncryptionKey"


def _established(device: Device) -> HsmClient:
    dev = device.open()
    device.establish(dev)
    return dev


def _get(dev: HsmClient, device: Device, verify: bool) -> tuple[bytes, bytes]:
    resp = dev.get_session_encryption_key()
    if verify and device.physical:
        assert key_signature_ok(dev, resp.pub_key.der, resp.pub_key_signature)
    if not device.physical:
        assert resp.pub_key_signature == b""
    return resp.pub_key.der, resp.nonce


def _with_session(device: Device) -> None:
    expect(S.InvalidArg, _established(device).request, OP, {}, sess_id=10, rev=None)


def _twice(device: Device, verify: bool) -> None:
    dev = _established(device)
    assert _get(dev, device, verify) == _get(dev, device, verify)


def _changes_after_reset(device: Device, verify: bool) -> None:
    dev = _established(device)
    der, nonce = _get(dev, device, verify)
    device.nssr()
    device.establish(dev)
    new_der, new_nonce = _get(dev, device, verify)
    assert new_der != der and new_nonce != nonce


def _without_credential(device: Device) -> None:
    # the vendor checks the status on a Virtual device only; ours answers the same under both
    expect(S.CredentialsNotEstablished, device.open().get_session_encryption_key)


def test_get_session_encryption_key_with_session(device: Device) -> None:
    _with_session(device)


def test_get_session_encryption_key_verify(device: Device) -> None:
    assert _get(_established(device), device, False)[0]


def test_get_session_encryption_key_twice(device: Device) -> None:
    _twice(device, False)


def test_get_session_encryption_key_multi_threaded_stress(device: Device) -> None:
    _established(device)
    handles = [device.open() for _ in range(128)]
    with ThreadPoolExecutor(16) as pool:
        assert len(set(pool.map(lambda dev: _get(dev, device, True), handles))) == 1


def test_get_session_encryption_key_changes_after_reset(device: Device) -> None:
    _changes_after_reset(device, False)


def test_get_session_encryption_key_without_establish_cred(device: Device) -> None:
    _without_credential(device)


def test_get_session_encryption_key_with_session_with_sig_verify(device: Device) -> None:
    _with_session(device)


def test_get_session_encryption_key_verify_with_sig_verify(device: Device) -> None:
    assert _get(_established(device), device, True)[0]


def test_get_session_encryption_key_twice_with_sig_verify(device: Device) -> None:
    _twice(device, True)


def test_get_session_encryption_key_changes_after_reset_with_sig_verify(device: Device) -> None:
    _changes_after_reset(device, True)


def test_get_session_encryption_key_without_establish_cred_with_sig_verify(device: Device) -> None:
    _without_credential(device)
