"""Mirrors masked_key_aes_gen.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import pytest

from pyhsm.client import DdiError, HsmClient
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, KeyType
from tests.conformance.vendor import CRED_ID, CRED_PIN, SESSION_SEED, Setup, fast_path, unmask_again

MSG = bytes([1]) * 512
IV = bytes([8]) * 16


def _masked_key_aes_gen(setup: Setup, size: AesKeySize) -> None:
    dev = setup.dev
    key = dev.aes_generate_key(size, tag=1)
    sealed = dev.aes_encrypt_decrypt(key.key_id, AesOp.Encrypt, MSG, IV).msg
    assert len(sealed) == len(MSG) and sealed != MSG
    new_id = unmask_again(dev, key.key_id, key.masked_key).key_id
    assert dev.aes_encrypt_decrypt(new_id, AesOp.Decrypt, sealed, IV).msg == MSG


def _reopen(dev: HsmClient, seed: bytes) -> int:
    """The session closed and a new one opened with ``seed`` on the same handle."""
    dev.close_session()
    return dev.open_session(CRED_ID, CRED_PIN, seed).sess_id


def test_masked_key_aes_128_gen(setup: Setup) -> None:
    _masked_key_aes_gen(setup, AesKeySize.Aes128)


def test_masked_key_aes_192_gen(setup: Setup) -> None:
    _masked_key_aes_gen(setup, AesKeySize.Aes192)


def test_masked_key_aes_256_gen(setup: Setup) -> None:
    _masked_key_aes_gen(setup, AesKeySize.Aes256)


def test_masked_key_aes_bulk_256_gen(setup: Setup) -> None:
    """A GCM bulk app key of the common session used through the fast path in another session (the
    vendor's thread, on its own handle); after DeleteKey its masked blob unmasks to a new bulk key,
    which decrypts what the first encrypted."""
    dev = setup.dev
    opened = setup.device.open().open_session(CRED_ID, CRED_PIN, SESSION_SEED)
    key = dev.aes_generate_key(AesKeySize.AesGcmBulk256Unapproved, tag=1)
    assert key.bulk_key_id is not None
    ids = dict(session_id=opened.sess_id, short_app_id=opened.short_app_id, iv=bytes([3]) * 12,
               aad=bytes([4]) * 32)
    sealed = fast_path(setup.device, AesOp.Encrypt, MSG, key_id=key.bulk_key_id, **ids)
    assert sealed.ok, sealed
    assert len(sealed.data) == len(MSG) and sealed.data != MSG
    again = unmask_again(dev, key.key_id, key.masked_key)
    assert again.bulk_key_id is not None and again.kind == KeyType.AesGcmBulk256Unapproved
    plain = fast_path(setup.device, AesOp.Decrypt, sealed.data, key_id=again.bulk_key_id, tag=sealed.tag, **ids)
    assert plain.ok, plain
    assert plain.data == MSG


def test_unmask_session_key(setup: Setup) -> None:
    """A session-only key unmasks in its own session; after the session is closed and another
    opened (same seed) the key is gone."""
    dev = setup.dev
    key = dev.aes_generate_key(AesKeySize.Aes128, session_only=True)
    dev.delete_key(key.key_id)
    key_id = dev.unmask_key(key.masked_key).key_id
    with pytest.raises(DdiError):
        dev.open_key(key_id)
    _reopen(dev, SESSION_SEED)
    with pytest.raises(DdiError):
        dev.aes_encrypt_decrypt(key_id, AesOp.Encrypt, MSG, bytes(16))


def test_unmask_named_key(setup: Setup) -> None:
    """An app key with a tag unmasks in another session after being deleted; OpenKey finds it."""
    dev = setup.dev
    key = dev.aes_generate_key(AesKeySize.Aes128, tag=0x1234)
    dev.delete_key(key.key_id)
    _reopen(dev, bytes([42]) * 48)
    new_id = dev.unmask_key(key.masked_key).key_id
    assert dev.open_key(0x1234).key_id == new_id
    assert dev.open_key(0x1234).key_id == new_id


def test_unmask_session_key_different_session(setup: Setup) -> None:
    dev = setup.dev
    key = dev.aes_generate_key(AesKeySize.Aes128, session_only=True)
    dev.delete_key(key.key_id)
    _reopen(dev, bytes([42]) * 48)
    with pytest.raises(DdiError):
        dev.unmask_key(key.masked_key)
