"""Mirrors ecc_sign_verify.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidSignature

from pyhsm.client import Usage
from pyhsm.protocol.ddi.types import AesKeySize, EccCurve, HashAlgorithm
from tests.conformance.vendor import S, Setup, ecc_verify, expect

DIGEST = bytes([1]) * 20


def _sign_fields(key_id: int) -> dict:
    return {"key_id": key_id, "digest": DIGEST, "digest_algo": int(HashAlgorithm.Sha256)}


def test_ecc_sign_no_session(setup: Setup) -> None:
    key_id = setup.dev.ecc_generate_key_pair(EccCurve.P256).private_key_id
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "EccSign", _sign_fields(key_id), sess_id=None)


def test_ecc_sign_incorrect_session_id(setup: Setup) -> None:
    key_id = setup.dev.ecc_generate_key_pair(EccCurve.P256).private_key_id
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "EccSign", _sign_fields(key_id), sess_id=20)


def test_ecc_sign_incorrect_key_type(setup: Setup) -> None:
    aes = setup.dev.aes_generate_key(AesKeySize.Aes128).key_id
    expect(S.InvalidKeyType, setup.dev.ecc_sign, aes, DIGEST, HashAlgorithm.Sha256)


def test_ecc_sign_incorrect_usage(setup: Setup) -> None:
    key_id = setup.dev.ecc_generate_key_pair(EccCurve.P256, Usage.DERIVE).private_key_id
    expect(S.InvalidPermissions, setup.dev.ecc_sign, key_id, DIGEST, HashAlgorithm.Sha256)


def test_ecc_sign_verify(setup: Setup) -> None:
    key = setup.dev.ecc_generate_key_pair(EccCurve.P256)
    signature = setup.dev.ecc_sign(key.private_key_id, DIGEST, HashAlgorithm.Sha256)
    ecc_verify(signature, key.pub_key.der, DIGEST)
    with pytest.raises(InvalidSignature):
        ecc_verify(signature, key.pub_key.der, bytes([2]) + DIGEST[1:])
