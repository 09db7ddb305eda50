"""Mirrors rsa_unwrap_generated_key.rs of the vendor's DDI integration tests (docs/conformance.md):
keys wrapped on the host for the partition's unwrapping key and unwrapped by the device."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from pyhsm.client import DdiError, HsmClient, Usage, key_properties
from pyhsm.protocol.ddi.types import HashAlgorithm, KeyClass, KeyType, RsaOpType
from tests.backend.ddi.ddi_helpers import rsa_aes_wrap
from tests.conformance.vendor import S, Setup, expect, flip, pkcs8, rsa_import, rsa_test_key, wrap

OAEP = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)


def _unwrap_fields(dev: HsmClient, blob: bytes, key_class: KeyClass = KeyClass.Rsa) -> dict:
    return {"key_id": dev.get_unwrapping_key().key_id, "wrapped_blob": blob, "wrapped_blob_key_class": int(key_class),
            "wrapped_blob_padding": 1, "wrapped_blob_hash_algorithm": int(HashAlgorithm.Sha256), "key_tag": None,
            "key_properties": key_properties(Usage.ENCRYPT_DECRYPT)}


def _rsa3k(dev: HsmClient) -> bytes:
    return wrap(dev, pkcs8(rsa_test_key(3072)))


def _unwrap(dev: HsmClient, blob: bytes, key_class: KeyClass = KeyClass.Rsa, usage: Usage = Usage.ENCRYPT_DECRYPT,
            kek_id: int | None = None, **kw: object) -> object:
    kek = dev.get_unwrapping_key().key_id if kek_id is None else kek_id
    return dev.rsa_unwrap(kek, blob, key_class, usage, **kw)


def _decrypts(dev: HsmClient, key_id: int) -> None:
    """The raw private operation on an OAEP ciphertext of 190 bytes gives its OAEP encoding back."""
    key = rsa_test_key(3072)
    message = bytes([1]) * 190
    encoded = dev.rsa_mod_exp(key_id, key.public_key().encrypt(message, OAEP), RsaOpType.Decrypt)
    numbers = key.public_key().public_numbers()
    assert key.decrypt(pow(int.from_bytes(encoded, "big"), numbers.e, numbers.n).to_bytes(384, "big"),
                       OAEP) == message


def _tagged(dev: HsmClient, blob: bytes, key_class: KeyClass, usage: Usage, tag: int, kind: KeyType) -> None:
    unwrapped = _unwrap(dev, blob, key_class, usage, tag=tag)
    assert unwrapped.kind == kind
    opened = dev.open_key(tag)
    assert (opened.key_id, opened.key_kind) == (unwrapped.key_id, kind)


def test_rsa_unwrap_no_session(setup: Setup) -> None:
    dev = setup.dev
    expect(S.FileHandleSessionIdDoesNotMatch, dev.request, "RsaUnwrap", _unwrap_fields(dev, _rsa3k(dev)), sess_id=None)


def test_rsa_unwrap_incorrect_session_id(setup: Setup) -> None:
    dev = setup.dev
    expect(S.FileHandleSessionIdDoesNotMatch, dev.request, "RsaUnwrap", _unwrap_fields(dev, _rsa3k(dev)), sess_id=20)


def test_rsa_unwrap_incorrect_key_num_table(setup: Setup) -> None:
    dev = setup.dev
    with pytest.raises(DdiError):
        _unwrap(dev, _rsa3k(dev), kek_id=(dev.get_unwrapping_key().key_id + 0x0300) & 0xFFFF)


def test_rsa_unwrap_incorrect_key_num_entry(setup: Setup) -> None:
    dev = setup.dev
    expect(S.KeyNotFound, _unwrap, dev, _rsa3k(dev), kek_id=(dev.get_unwrapping_key().key_id + 0x0020) & 0xFFFF)


def test_rsa_unwrap_incorrect_der_len(setup: Setup) -> None:
    dev = setup.dev
    blob = _rsa3k(dev)
    with pytest.raises(DdiError):
        _unwrap(dev, blob[:len(blob) // 2])


def test_rsa_unwrap_incorrect_key_type(setup: Setup) -> None:
    with pytest.raises(DdiError):
        _unwrap(setup.dev, _rsa3k(setup.dev), KeyClass.Ecc)


def test_rsa_unwrap_incorrect_hash(setup: Setup) -> None:
    with pytest.raises(DdiError):
        _unwrap(setup.dev, _rsa3k(setup.dev), hash_algorithm=HashAlgorithm.Sha1)


def test_rsa_unwrap_tampered_data(setup: Setup) -> None:
    blob = _rsa3k(setup.dev)
    with pytest.raises(DdiError):
        _unwrap(setup.dev, flip(blob, len(blob) // 2))


def test_rsa_unwrap_incorrect_input_key_usage(setup: Setup) -> None:
    """An imported RSA key without the unwrap usage cannot unwrap what is wrapped for it."""
    dev = setup.dev
    kek = rsa_import(dev, 2048)
    assert kek.kind == KeyType.Rsa2kPrivate
    blob = rsa_aes_wrap(serialization.load_der_public_key(kek.pub_key.der), pkcs8(rsa_test_key(3072)))
    with pytest.raises(DdiError):
        _unwrap(dev, blob, kek_id=kek.key_id)


def test_rsa_unwrap_rsa_key_sizes(setup: Setup) -> None:
    for bits, kind in ((2048, KeyType.Rsa2kPrivate), (3072, KeyType.Rsa3kPrivate), (4096, KeyType.Rsa4kPrivate)):
        blob = wrap(setup.dev, pkcs8(rsa_test_key(bits)))
        assert _unwrap(setup.dev, blob, usage=Usage.SIGN_VERIFY).kind == kind


def test_rsa_unwrap_rsa_key(setup: Setup) -> None:
    unwrapped = _unwrap(setup.dev, _rsa3k(setup.dev))
    assert unwrapped.kind == KeyType.Rsa3kPrivate
    _decrypts(setup.dev, unwrapped.key_id)


def test_rsa_unwrap_rsa_crt_key(setup: Setup) -> None:
    unwrapped = _unwrap(setup.dev, _rsa3k(setup.dev), KeyClass.RsaCrt)
    assert unwrapped.kind == KeyType.Rsa3kPrivateCrt
    _decrypts(setup.dev, unwrapped.key_id)


def test_rsa_unwrap_rsa_with_key_tag(setup: Setup) -> None:
    _tagged(setup.dev, _rsa3k(setup.dev), KeyClass.Rsa, Usage.ENCRYPT_DECRYPT, 0x6677, KeyType.Rsa3kPrivate)


def test_rsa_unwrap_rsa_crt_with_key_tag(setup: Setup) -> None:
    _tagged(setup.dev, _rsa3k(setup.dev), KeyClass.RsaCrt, Usage.ENCRYPT_DECRYPT, 0x6677, KeyType.Rsa3kPrivateCrt)


def test_rsa_unwrap_ecc_keys_with_key_tag(setup: Setup) -> None:
    for curve, kind, tag in ((ec.SECP256R1(), KeyType.Ecc256Private, 0x6677),
                             (ec.SECP384R1(), KeyType.Ecc384Private, 0x6678),
                             (ec.SECP521R1(), KeyType.Ecc521Private, 0x6679)):
        blob = wrap(setup.dev, pkcs8(ec.generate_private_key(curve)))
        _tagged(setup.dev, blob, KeyClass.Ecc, Usage.SIGN_VERIFY, tag, kind)


def test_rsa_unwrap_aes_key(setup: Setup) -> None:
    unwrapped = _unwrap(setup.dev, wrap(setup.dev, os.urandom(32)), KeyClass.Aes, tag=0x5566)
    assert unwrapped.kind == KeyType.Aes256 and unwrapped.pub_key is None
    opened = setup.dev.open_key(0x5566)
    assert (opened.key_id, opened.key_kind) == (unwrapped.key_id, KeyType.Aes256)


def test_rsa_unwrap_aes_with_key_tag(setup: Setup) -> None:
    _tagged(setup.dev, wrap(setup.dev, os.urandom(32)), KeyClass.Aes, Usage.ENCRYPT_DECRYPT, 0x6677, KeyType.Aes256)
