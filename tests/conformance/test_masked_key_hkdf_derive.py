"""Mirrors masked_key_hkdf_derive.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import tests.conformance.masked_derive_cases as case
from pyhsm.protocol.ddi.types import HashAlgorithm, KeyType
from tests.conformance.vendor import Setup

OP = "HkdfDerive"


def test_masked_key_secret_hkdf(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha256, b"salt", b"label", KeyType.Aes256)


def test_masked_key_secret_hkdf_sha1(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha1, b"salt", b"label", KeyType.Aes256)


def test_masked_key_secret_hkdf_no_salt(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha256, None, b"label", KeyType.Aes256)


def test_masked_key_secret_hkdf_no_info(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha256, b"salt", None, KeyType.Aes256)


def test_masked_key_secret_hkdf_aes128(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha256, b"salt", b"label", KeyType.Aes128)


def test_masked_key_secret_hkdf_aes192(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha256, b"salt", b"label", KeyType.Aes192)


def test_masked_key_secret_hkdf_aes_gcm_secret256(setup: Setup) -> None:
    case.masked_derive_gcm(setup, OP, b"salt", b"label", KeyType.Secret256)


def test_masked_key_secret_hkdf_aes_gcm_secret384(setup: Setup) -> None:
    case.masked_derive_gcm(setup, OP, b"salt", b"label", KeyType.Secret384)


def test_masked_key_secret_hkdf_aes_gcm_secret521(setup: Setup) -> None:
    case.masked_derive_gcm(setup, OP, b"salt", b"label", KeyType.Secret521)
