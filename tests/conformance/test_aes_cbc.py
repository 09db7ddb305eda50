"""Mirrors aes_cbc.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import pytest

from pyhsm.client import DdiError, HsmClient, Usage
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, EccCurve
from tests.conformance.vendor import S, Setup, expect, generate, malformed

MSG = bytes([1]) * 512


def _keys(dev: HsmClient) -> tuple[int, int, int]:
    """generate_keys: AES-128, AES-192 and AES-256 (the last with a tag)."""
    return (dev.aes_generate_key(AesKeySize.Aes128).key_id, dev.aes_generate_key(AesKeySize.Aes192).key_id,
            dev.aes_generate_key(AesKeySize.Aes256, tag=0x1234).key_id)


def _fields(key_id: int, op: AesOp, msg: bytes, iv: bytes) -> dict:
    return {"key_id": key_id, "op": int(op), "msg": msg, "iv": iv}


def _round_trip(dev: HsmClient, key_id: int) -> None:
    for iv in (bytes(16), bytes([8]) * 16):
        sealed = dev.aes_encrypt_decrypt(key_id, AesOp.Encrypt, MSG, iv)
        assert sealed.msg != MSG and len(sealed.msg) == len(MSG)
        assert dev.aes_encrypt_decrypt(key_id, AesOp.Decrypt, sealed.msg, iv).msg == MSG


def test_aes_cbc_encrypt_decrypt_malformed_ddi(setup: Setup) -> None:
    assert malformed(setup, "AesEncryptDecrypt") == [S.DdiDecodeFailed, S.DdiDecodeFailed]


def test_aes_cbc_encrypt_decrypt_no_session(setup: Setup) -> None:
    key_id = _keys(setup.dev)[2]
    for op in AesOp:
        expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "AesEncryptDecrypt",
               _fields(key_id, op, MSG, bytes(16)), sess_id=None)


def test_aes_cbc_encrypt_decrypt_msg_is_not_aligned_to_block_length(setup: Setup) -> None:
    key_id = _keys(setup.dev)[2]
    for op in AesOp:
        with pytest.raises(DdiError):
            setup.dev.aes_encrypt_decrypt(key_id, op, MSG[:510], bytes(16))


def test_aes_cbc_encrypt_decrypt_incorrect_key_type(setup: Setup) -> None:
    ecc = setup.dev.ecc_generate_key_pair(EccCurve.P256, Usage.SIGN_VERIFY).private_key_id
    for op in AesOp:
        expect(S.InvalidKeyType, setup.dev.aes_encrypt_decrypt, ecc, op, MSG, bytes(16))


def test_aes_cbc_encrypt_decrypt_incorrect_permissions(setup: Setup) -> None:
    for usage in (Usage.SIGN_VERIFY, Usage.UNWRAP):
        expect(S.InvalidPermissions, generate, setup.dev, "AesGenerateKey", usage, key_size=int(AesKeySize.Aes128))


def test_aes_cbc_encrypt_decrypt_incorrect_key_id(setup: Setup) -> None:
    for op in AesOp:
        expect(S.KeyNotFound, setup.dev.aes_encrypt_decrypt, 20, op, MSG, bytes([8]) * 16)


def test_aes_cbc_encrypt_decrypt_128(setup: Setup) -> None:
    _round_trip(setup.dev, _keys(setup.dev)[0])


def test_aes_cbc_encrypt_decrypt_192(setup: Setup) -> None:
    _round_trip(setup.dev, _keys(setup.dev)[1])


def test_aes_cbc_encrypt_decrypt_256(setup: Setup) -> None:
    _round_trip(setup.dev, _keys(setup.dev)[2])


def test_aes_cbc_iv_chaining_encrypt_then_decrypt(setup: Setup) -> None:
    """Two one-block encryptions chained through the returned IV decrypt as one two-block message."""
    dev, key_id, iv = setup.dev, _keys(setup.dev)[0], bytes([1]) * 16
    first = dev.aes_encrypt_decrypt(key_id, AesOp.Encrypt, bytes([1]) * 16, iv)
    second = dev.aes_encrypt_decrypt(key_id, AesOp.Encrypt, bytes([1]) * 16, first.iv)
    assert dev.aes_encrypt_decrypt(key_id, AesOp.Decrypt, first.msg + second.msg, iv).msg == bytes([1]) * 32


def test_aes_cbc_encrypt_then_iv_chaining_decrypt(setup: Setup) -> None:
    """A two-block ciphertext decrypts block by block, chained through the returned IV."""
    dev, key_id, iv = setup.dev, _keys(setup.dev)[0], bytes([1]) * 16
    sealed = dev.aes_encrypt_decrypt(key_id, AesOp.Encrypt, bytes([1]) * 32, iv).msg
    first = dev.aes_encrypt_decrypt(key_id, AesOp.Decrypt, sealed[:16], iv)
    second = dev.aes_encrypt_decrypt(key_id, AesOp.Decrypt, sealed[16:], first.iv)
    assert first.msg + second.msg == bytes([1]) * 32
