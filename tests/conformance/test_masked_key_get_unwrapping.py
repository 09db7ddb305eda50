"""Mirrors masked_key_get_unwrapping.rs of the vendor's DDI integration tests (docs/conformance.md):
the unwrapping key's masked blob cannot be unmasked, before or after a live migration (NSSR) with
the blob handed back to EstablishCredential."""

from __future__ import annotations

from tests.conformance.vendor import Device, S, Setup, expect, recover, setup_for_lm


def test_masked_key_get_unwrapping_without_lm(setup: Setup) -> None:
    masked = setup.dev.get_unwrapping_key().masked_key
    expect(S.UnmaskUnwrappingKeyNotAllowed, setup.dev.unmask_key, masked)


def test_masked_key_get_unwrapping_with_lm(device: Device) -> None:
    lm = setup_for_lm(device)
    before = lm.handle.get_unwrapping_key()
    device.nssr()
    assert recover(lm, masked_unwrapping_key=before.masked_key).sess_id == lm.session_id
    expect(S.UnmaskUnwrappingKeyNotAllowed, lm.handle.unmask_key, before.masked_key)
    assert lm.handle.get_unwrapping_key().pub_key.der == before.pub_key.der
