"""Mirrors open_key_no_import.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

from pyhsm.client import Usage
from pyhsm.protocol.ddi.types import AesKeySize, EccCurve, HashAlgorithm, KeyType
from tests.conformance.vendor import S, Setup, ecc_verify, expect

KEY_TAG = 0x5453
DIGEST = bytes([100]) * 20


def test_open_key_no_session(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "OpenKey", {"key_tag": KEY_TAG}, sess_id=None)


def test_open_key_incorrect_session_id(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "OpenKey", {"key_tag": KEY_TAG}, sess_id=20)


def test_open_key_incorrect_key_tag(setup: Setup) -> None:
    expect(S.KeyNotFound, setup.dev.open_key, 0x0300)


def test_open_key_no_key_tag(setup: Setup) -> None:
    setup.dev.aes_generate_key(AesKeySize.Aes128, tag=KEY_TAG)
    setup.dev.aes_generate_key(AesKeySize.Aes128)
    expect(S.KeyNotFound, setup.dev.open_key, 0)


def test_open_key_aes128(setup: Setup) -> None:
    _open_aes(setup, AesKeySize.Aes128, KeyType.Aes128)


def test_open_key_aes192(setup: Setup) -> None:
    _open_aes(setup, AesKeySize.Aes192, KeyType.Aes192)


def test_open_key_aes256(setup: Setup) -> None:
    _open_aes(setup, AesKeySize.Aes256, KeyType.Aes256)


def _open_aes(setup: Setup, size: AesKeySize, kind: KeyType) -> None:
    setup.dev.aes_generate_key(size, tag=KEY_TAG)
    opened = setup.dev.open_key(KEY_TAG)
    assert opened.key_kind == kind and opened.pub_key is None


def _open_ecc(setup: Setup, curve: EccCurve, kind: KeyType, algo: HashAlgorithm) -> None:
    generated = setup.dev.ecc_generate_key_pair(curve, Usage.SIGN_VERIFY, tag=KEY_TAG)
    opened = setup.dev.open_key(KEY_TAG)
    assert opened.key_kind == kind and opened.pub_key.der == generated.pub_key.der
    signature = setup.dev.ecc_sign(opened.key_id, DIGEST, algo)
    ecc_verify(signature, opened.pub_key.der, DIGEST)


def test_open_key_ecc256(setup: Setup) -> None:
    _open_ecc(setup, EccCurve.P256, KeyType.Ecc256Private, HashAlgorithm.Sha256)


def test_open_key_ecc384(setup: Setup) -> None:
    _open_ecc(setup, EccCurve.P384, KeyType.Ecc384Private, HashAlgorithm.Sha384)


def test_open_key_ecc521(setup: Setup) -> None:
    _open_ecc(setup, EccCurve.P521, KeyType.Ecc521Private, HashAlgorithm.Sha512)


def test_open_deleted_key(setup: Setup) -> None:
    setup.dev.delete_key(setup.dev.aes_generate_key(AesKeySize.Aes128, tag=KEY_TAG).key_id)
    expect(S.KeyNotFound, setup.dev.open_key, KEY_TAG)
