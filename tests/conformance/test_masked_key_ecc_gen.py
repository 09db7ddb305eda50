"""Mirrors masked_key_ecc_gen.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature

from pyhsm.client import HsmClient
from pyhsm.protocol.ddi.types import EccCurve, HashAlgorithm
from tests.conformance.vendor import Setup, ecc_verify, unmask_again

DIGEST = bytes([1]) * 20


def _unmask_and_sign(dev: HsmClient, curve: EccCurve, session_only: bool) -> None:
    """The key unmasked again after DeleteKey has the same public key and signs verifiably."""
    key = dev.ecc_generate_key_pair(curve, tag=None if session_only else 1, session_only=session_only)
    again = unmask_again(dev, key.private_key_id, key.masked_key, try_first=not session_only)
    assert (again.pub_key.key_kind, again.pub_key.der) == (key.pub_key.key_kind, key.pub_key.der)
    signature = dev.ecc_sign(again.key_id, DIGEST, HashAlgorithm.Sha256)
    ecc_verify(signature, again.pub_key.der, DIGEST)
    with pytest.raises(InvalidSignature):
        ecc_verify(signature, again.pub_key.der, bytes([2]) + DIGEST[1:])


def _session_only(setup: Setup, curve: EccCurve) -> None:
    dev = setup.device.open()
    setup.device.open_session(dev)
    _unmask_and_sign(dev, curve, True)


def test_masked_key_ecc_session_only_256(setup: Setup) -> None:
    _session_only(setup, EccCurve.P256)


def test_masked_key_ecc_session_only_384(setup: Setup) -> None:
    _session_only(setup, EccCurve.P384)


def test_masked_key_ecc_session_only_521(setup: Setup) -> None:
    _session_only(setup, EccCurve.P521)


def test_masked_key_ecc_256(setup: Setup) -> None:
    _unmask_and_sign(setup.dev, EccCurve.P256, False)


def test_masked_key_ecc_384(setup: Setup) -> None:
    _unmask_and_sign(setup.dev, EccCurve.P384, False)


def test_masked_key_ecc_521(setup: Setup) -> None:
    _unmask_and_sign(setup.dev, EccCurve.P521, False)
