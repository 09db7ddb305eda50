"""Mirrors ecc_sign_compat.rs of the vendor's DDI integration tests (docs/conformance.md): each curve
signs digests of 20 bytes and of every longer length up to its own (digest algorithm by length).
Our device is not a FIPS-approved module, so SHA-1 digests are signed rather than refused."""

from __future__ import annotations

from pyhsm.protocol.ddi.types import EccCurve
from tests.conformance.vendor import Setup, ecc_verify


def _sign_verify(setup: Setup, curve: EccCurve, digest_len: int) -> None:
    key = setup.dev.ecc_generate_key_pair(curve)
    digest = bytes(range(digest_len))
    assert not setup.dev.get_device_info().fips_approved
    ecc_verify(setup.dev.ecc_sign(key.private_key_id, digest), key.pub_key.der, digest)


def test_ecc_gen_key_sign_256_compat(setup: Setup) -> None:
    _sign_verify(setup, EccCurve.P256, 20)


def test_ecc_gen_key_sign_256_digest_32_compat(setup: Setup) -> None:
    _sign_verify(setup, EccCurve.P256, 32)


def test_ecc_gen_key_sign_384_compat(setup: Setup) -> None:
    _sign_verify(setup, EccCurve.P384, 20)


def test_ecc_gen_key_sign_384_digest_32_compat(setup: Setup) -> None:
    _sign_verify(setup, EccCurve.P384, 32)


def test_ecc_gen_key_sign_384_digest_48_compat(setup: Setup) -> None:
    _sign_verify(setup, EccCurve.P384, 48)


def test_ecc_gen_key_sign_521_compat(setup: Setup) -> None:
    _sign_verify(setup, EccCurve.P521, 20)


def test_ecc_gen_key_sign_521_digest_32_compat(setup: Setup) -> None:
    _sign_verify(setup, EccCurve.P521, 32)


def test_ecc_gen_key_sign_521_digest_48_compat(setup: Setup) -> None:
    _sign_verify(setup, EccCurve.P521, 48)


def test_ecc_gen_key_sign_521_digest_64_compat(setup: Setup) -> None:
    _sign_verify(setup, EccCurve.P521, 64)
