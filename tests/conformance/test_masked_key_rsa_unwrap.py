"""Mirrors masked_key_rsa_unwrap.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from pyhsm.client import Usage
from pyhsm.protocol.ddi.types import KeyClass, KeyType, RsaOpType
from tests.conformance.vendor import Setup, pkcs8, rsa_test_key, unmask_again, wrap

OAEP = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)


def _rsa(setup: Setup, key_class: KeyClass, kind: KeyType) -> None:
    """A 3k key unwrapped, unmasked again after DeleteKey; its raw private operation on an OAEP
    ciphertext of 190 bytes gives the OAEP encoding of the message (checked with the public key)."""
    dev, key = setup.dev, rsa_test_key(3072)
    unwrapped = dev.rsa_unwrap(dev.get_unwrapping_key().key_id, wrap(dev, pkcs8(key)), key_class,
                               Usage.ENCRYPT_DECRYPT, tag=1)
    assert unwrapped.kind == kind
    new_id = unmask_again(dev, unwrapped.key_id, unwrapped.masked_key).key_id
    message = bytes([1]) * 190
    encoded = dev.rsa_mod_exp(new_id, key.public_key().encrypt(message, OAEP), RsaOpType.Decrypt)
    numbers = key.public_key().public_numbers()
    ciphertext = pow(int.from_bytes(encoded, "big"), numbers.e, numbers.n).to_bytes(384, "big")
    assert key.decrypt(ciphertext, OAEP) == message


def _other(setup: Setup, material: bytes, key_class: KeyClass, usage: Usage, tag: int, kind: KeyType) -> None:
    """Unwrapped with ``tag``, unmasked again after DeleteKey: OpenKey finds the new key."""
    dev = setup.dev
    unwrapped = dev.rsa_unwrap(dev.get_unwrapping_key().key_id, wrap(dev, material), key_class, usage, tag=tag)
    assert unwrapped.kind == kind
    if key_class is not KeyClass.Ecc:
        assert unwrapped.pub_key is None
    new_id = unmask_again(dev, unwrapped.key_id, unwrapped.masked_key).key_id
    opened = dev.open_key(tag)
    assert (opened.key_id, opened.key_kind) == (new_id, kind)


def test_masked_key_rsa_unwrap_rsa_key(setup: Setup) -> None:
    _rsa(setup, KeyClass.Rsa, KeyType.Rsa3kPrivate)


def test_masked_key_rsa_unwrap_rsa_crt_key(setup: Setup) -> None:
    _rsa(setup, KeyClass.RsaCrt, KeyType.Rsa3kPrivateCrt)


def test_masked_key_rsa_unwrap_ecc_key(setup: Setup) -> None:
    for curve, kind, tag in ((ec.SECP256R1(), KeyType.Ecc256Private, 0x6677),
                             (ec.SECP384R1(), KeyType.Ecc384Private, 0x6678),
                             (ec.SECP521R1(), KeyType.Ecc521Private, 0x6679)):
        _other(setup, pkcs8(ec.generate_private_key(curve)), KeyClass.Ecc, Usage.SIGN_VERIFY, tag, kind)


def test_masked_key_rsa_unwrap_aes_key(setup: Setup) -> None:
    _other(setup, os.urandom(32), KeyClass.Aes, Usage.ENCRYPT_DECRYPT, 0x5566, KeyType.Aes256)


def test_masked_key_rsa_unwrap_aes_bulk_key(setup: Setup) -> None:
    _other(setup, os.urandom(32), KeyClass.AesGcmBulkUnapproved, Usage.ENCRYPT_DECRYPT, 0x5566,
           KeyType.AesGcmBulk256Unapproved)
