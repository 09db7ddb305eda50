"""Mirrors live_migration_expected_errors.rs of the vendor's DDI integration tests
(docs/conformance.md): what the device answers right after a live migration (NSSR, the vendor's
simulate_nssr_after_lm) to requests prepared before it."""

from __future__ import annotations

from tests.conformance.credential_cases import establish
from tests.conformance.vendor import Device, S, Setup, establish_credential, expect, session_credential


def test_get_establish_cred_encryption_key_after_lm(device: Device) -> None:
    before = device.open().get_establish_cred_encryption_key()
    device.nssr()
    after = device.open().get_establish_cred_encryption_key()
    assert after.nonce != before.nonce


def test_establish_credential_after_lm(device: Device) -> None:
    """A credential sealed before the migration carries the old nonce: NonceMismatch (here with the
    vendor's 1024-byte all-zero BMK and masked unwrapping key)."""
    dev = device.open()
    cred, pub = establish_credential(dev)
    device.nssr()
    expect(S.NonceMismatch, establish, device, dev, cred, pub, blobs=(bytes(1024), bytes(1024)))


def test_get_session_encryption_key_after_lm(setup: Setup) -> None:
    setup.device.nssr()
    expect(S.CredentialsNotEstablished, setup.dev.get_session_encryption_key)


def test_open_session_after_lm(setup: Setup) -> None:
    setup.dev.close_session()
    cred, pub = session_credential(setup.dev)
    setup.device.nssr()
    expect(S.CredentialsNotEstablished, setup.dev.call, "OpenSession", encrypted_credential=cred, pub_key=pub)


def test_reopen_session_after_lm(setup: Setup) -> None:
    """ReopenSession before the credential is established again: PartitionNotProvisioned."""
    cred, pub = session_credential(setup.dev)
    setup.device.nssr()
    expect(S.PartitionNotProvisioned, setup.dev.call, "ReopenSession", encrypted_credential=cred, pub_key=pub,
           bmk_session=b"")
