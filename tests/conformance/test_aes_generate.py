"""Mirrors aes_generate.rs of the vendor's DDI integration tests (docs/conformance.md). The unmask
tests return early on a Physical device in the vendor suite; ours unmasks under both profiles."""

from __future__ import annotations

import pytest

from pyhsm.client import DdiError, Usage, key_properties
from pyhsm.protocol.ddi.types import AesKeySize, AesOp
from tests.conformance.vendor import S, Setup, expect, generate, malformed

MSG = bytes([1]) * 512
AES128 = {"key_size": int(AesKeySize.Aes128), "key_tag": None,
          "key_properties": key_properties(Usage.ENCRYPT_DECRYPT)}


def test_aes_generate_malformed_ddi(setup: Setup) -> None:
    assert malformed(setup, "AesGenerateKey") == [S.DdiDecodeFailed, S.DdiDecodeFailed]


def test_aes_generate_no_session(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "AesGenerateKey", AES128, sess_id=None)


def test_aes_generate_invalid_session(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "AesGenerateKey", AES128, sess_id=20)


def test_aes_generate_invalid_key_usage(setup: Setup) -> None:
    with pytest.raises(DdiError):
        generate(setup.dev, "AesGenerateKey", Usage.DERIVE, key_size=int(AesKeySize.Aes128))


def test_aes_generate_session_only_key_with_key_tag(setup: Setup) -> None:
    expect(S.InvalidArg, setup.dev.aes_generate_key, AesKeySize.Aes128, tag=0x9876, session_only=True)


def test_aes_generate_session_only_key(setup: Setup) -> None:
    key = setup.dev.aes_generate_key(AesKeySize.Aes128, session_only=True)
    assert setup.dev.aes_encrypt_decrypt(key.key_id, AesOp.Encrypt, MSG, bytes(16)).msg != MSG


def test_aes_generate(setup: Setup) -> None:
    key = setup.dev.aes_generate_key(AesKeySize.Aes128)
    assert key.masked_key and key.bulk_key_id is None


def test_aes_generate_and_unmask(setup: Setup) -> None:
    dev = setup.dev
    key = dev.aes_generate_key(AesKeySize.Aes128)
    assert key.masked_key
    unmasked = dev.unmask_key(key.masked_key).key_id
    assert unmasked != key.key_id
    sealed = dev.aes_encrypt_decrypt(key.key_id, AesOp.Encrypt, MSG, bytes(16)).msg
    assert dev.aes_encrypt_decrypt(unmasked, AesOp.Decrypt, sealed, bytes(16)).msg == MSG


def test_aes_generate_and_unmask_tampered(setup: Setup) -> None:
    masked = setup.dev.aes_generate_key(AesKeySize.Aes128).masked_key
    expect(S.MaskedKeyDecodeFailed, setup.dev.unmask_key, bytes([(masked[0] + 1) % 256]) + masked[1:])
    # the vendor keeps the blob's 3072-byte buffer and declares a tenth of it: the blob, zero-padded
    expect(S.MaskedKeyDecodeFailed, setup.dev.unmask_key, masked.ljust(3072, b"\0")[:3072 // 10])
