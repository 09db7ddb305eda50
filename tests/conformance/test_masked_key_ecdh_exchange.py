"""Mirrors masked_key_ecdh_exchange.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

from pyhsm.protocol.ddi.types import EccCurve, KeyType
from tests.conformance.vendor import Setup, ecc_key_pair, unmask_again


def _exchange(setup: Setup, curve: EccCurve, kind: KeyType) -> None:
    """A tagged ECDH secret unmasked again after DeleteKey is what OpenKey finds under the tag."""
    dev = setup.dev
    first, second = ecc_key_pair(dev, curve), ecc_key_pair(dev, curve)
    secret = dev.ecdh_key_exchange(first.private_key_id, second.pub_key.der, kind, tag=1)
    new_id = unmask_again(dev, secret.key_id, secret.masked_key).key_id
    opened = dev.open_key(1)
    assert (opened.key_id, opened.key_kind) == (new_id, kind)


def test_masked_key_ecdh_256_key_exchange(setup: Setup) -> None:
    _exchange(setup, EccCurve.P256, KeyType.Secret256)


def test_masked_key_ecdh_384_key_exchange(setup: Setup) -> None:
    _exchange(setup, EccCurve.P384, KeyType.Secret384)


def test_masked_key_ecdh_521_key_exchange(setup: Setup) -> None:
    _exchange(setup, EccCurve.P521, KeyType.Secret521)
