"""Mirrors secret_hkdf_derive.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import tests.conformance.secret_derive_cases as case
from pyhsm.client import Usage
from pyhsm.protocol.ddi.types import HashAlgorithm, KeyType
from tests.conformance.vendor import S, Setup

OP = "HkdfDerive"
SALT, INFO = b"salt", b"label"


def test_secret_hkdf_no_session(setup: Setup) -> None:
    case.wrong_session(setup, OP, None)


def test_secret_hkdf_invalid_session(setup: Setup) -> None:
    case.wrong_session(setup, OP, 20)


def test_secret_hkdf_invalid_input_key_type(setup: Setup) -> None:
    case.invalid_input_key_type(setup, OP)


def test_secret_hkdf_invalid_output_key_type(setup: Setup) -> None:
    case.invalid_output(setup, OP, KeyType.Ecc256Private, Usage.ENCRYPT_DECRYPT, S.InvalidKeyType)


def test_secret_hkdf_invalid_secret521_output_key_type(setup: Setup) -> None:
    case.invalid_output(setup, OP, KeyType.Secret521, Usage.ENCRYPT_DECRYPT, S.InvalidKeyType)


def test_secret_hkdf_invalid_output_key_usage(setup: Setup) -> None:
    case.invalid_output(setup, OP, KeyType.Aes256, Usage.DERIVE, S.InvalidPermissions)


def test_secret_hkdf_different_info_len(setup: Setup) -> None:
    case.different_inputs(setup, OP, [(None, INFO), (None, INFO + b"\0")])


def test_secret_hkdf(setup: Setup) -> None:
    case.derive_pair(setup, OP, HashAlgorithm.Sha256, SALT, INFO, KeyType.Aes256)


def test_secret_hkdf_sha1(setup: Setup) -> None:
    case.derive_pair(setup, OP, HashAlgorithm.Sha1, SALT, INFO, KeyType.Aes256)


def test_secret_hkdf_no_salt(setup: Setup) -> None:
    case.derive_pair(setup, OP, HashAlgorithm.Sha256, None, INFO, KeyType.Aes256)


def test_secret_hkdf_no_info(setup: Setup) -> None:
    case.derive_pair(setup, OP, HashAlgorithm.Sha256, SALT, None, KeyType.Aes256)


def test_secret_hkdf_aes128(setup: Setup) -> None:
    case.derive_pair(setup, OP, HashAlgorithm.Sha256, SALT, INFO, KeyType.Aes128)


def test_secret_hkdf_aes192(setup: Setup) -> None:
    case.derive_pair(setup, OP, HashAlgorithm.Sha256, SALT, INFO, KeyType.Aes192)


def test_secret_hkdf_aes_gcm_secret256(setup: Setup) -> None:
    case.bulk(setup, OP, SALT, INFO, KeyType.AesGcmBulk256Unapproved, KeyType.Secret256)


def test_secret_hkdf_aes_gcm_secret384(setup: Setup) -> None:
    case.bulk(setup, OP, SALT, INFO, KeyType.AesGcmBulk256Unapproved, KeyType.Secret384)


def test_secret_hkdf_aes_gcm_secret521(setup: Setup) -> None:
    case.bulk(setup, OP, SALT, INFO, KeyType.AesGcmBulk256Unapproved, KeyType.Secret521)


def test_secret_hkdf_aes_xts_secret256(setup: Setup) -> None:
    case.bulk(setup, OP, SALT, INFO, KeyType.AesXtsBulk256, KeyType.Secret256)


def test_secret_hkdf_aes_xts_secret384(setup: Setup) -> None:
    case.bulk(setup, OP, SALT, INFO, KeyType.AesXtsBulk256, KeyType.Secret384)


def test_secret_hkdf_aes_xts_secret521(setup: Setup) -> None:
    case.bulk(setup, OP, SALT, INFO, KeyType.AesXtsBulk256, KeyType.Secret521)


def test_secret_hkdf_name(setup: Setup) -> None:
    case.named(setup, OP, SALT, b"info")


def test_secret_hkdf_aes256_sha256(setup: Setup) -> None:
    case.aes_hmac(setup, OP, SALT, INFO, KeyType.Aes256, KeyType.HmacSha256, 32)


def test_secret_hkdf_aes256_sha384(setup: Setup) -> None:
    case.aes_hmac(setup, OP, SALT, INFO, KeyType.Aes256, KeyType.HmacSha384, 48)


def test_secret_hkdf_aes192_sha512(setup: Setup) -> None:
    case.aes_hmac(setup, OP, SALT, INFO, KeyType.Aes192, KeyType.HmacSha512, 64)


def test_secret_hkdf_aes128_sha256(setup: Setup) -> None:
    case.aes_hmac(setup, OP, SALT, INFO, KeyType.Aes128, KeyType.HmacSha256, 32)


def test_secret_hkdf_and_unmask(setup: Setup) -> None:
    case.and_unmask(setup, OP, SALT, INFO)


def test_secret_hkdf_and_unmask_ecdh_key(setup: Setup) -> None:
    case.and_unmask_ecdh_key(setup, OP, SALT, INFO)
