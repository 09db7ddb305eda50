"""Mirrors masked_key_kbkdf_derive.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import tests.conformance.masked_derive_cases as case
from pyhsm.protocol.ddi.types import HashAlgorithm, KeyType
from tests.conformance.vendor import Setup

OP = "KbkdfCounterHmacDerive"


def test_masked_key_secret_kbkdf(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha256, b"label", b"context", KeyType.Aes256)


def test_masked_key_secret_kbkdf_sha1(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha1, b"label", b"context", KeyType.Aes256)


def test_masked_key_secret_kbkdf_no_label(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha256, None, b"context", KeyType.Aes256)


def test_masked_key_secret_kbkdf_no_context(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha256, b"label", None, KeyType.Aes256)


def test_masked_key_secret_kbkdf_aes128(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha256, b"label", b"context", KeyType.Aes128)


def test_masked_key_secret_kbkdf_aes192(setup: Setup) -> None:
    case.masked_derive(setup, OP, HashAlgorithm.Sha256, b"label", b"context", KeyType.Aes192)


def test_masked_key_secret_kbkdf_aes_gcm_secret256(setup: Setup) -> None:
    case.masked_derive_gcm(setup, OP, b"label", b"context", KeyType.Secret256)


def test_masked_key_secret_kbkdf_aes_gcm_secret384(setup: Setup) -> None:
    case.masked_derive_gcm(setup, OP, b"label", b"context", KeyType.Secret384)


def test_masked_key_secret_kbkdf_aes_gcm_secret521(setup: Setup) -> None:
    case.masked_derive_gcm(setup, OP, b"label", b"context", KeyType.Secret521)
