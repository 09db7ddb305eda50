"""Mirrors aes_xts_encrypt_decrypt.rs of the vendor's DDI integration tests (docs/conformance.md): XTS
through the fast path with 1 MiB as one data unit, exactly our device's largest AES transfer per
direction: the round trip and the two refusals run with the vendor's 1 MiB."""

from __future__ import annotations

import os

from pyhsm.client import Usage
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, KeyClass
from tests.conformance.vendor import CRED_ID, CRED_PIN, SESSION_SEED, S, Setup, fast_path, wrap

DATA = bytes([1]) * (1024 * 1024)
TWEAK = bytes([4]) * 16


def _reopen(setup: Setup) -> dict:
    """The common session closed and another opened on the same handle: its id and short app id."""
    setup.dev.close_session()
    opened = setup.dev.open_session(CRED_ID, CRED_PIN, SESSION_SEED)
    return dict(session_id=opened.sess_id, short_app_id=opened.short_app_id, tweak=TWEAK)


def _import(setup: Setup, material: bytes, key_class: KeyClass) -> int:
    """rsa_secure_import_key of a raw AES key: its bulk key id."""
    dev = setup.dev
    key = dev.rsa_unwrap(dev.get_unwrapping_key().key_id, wrap(dev, material), key_class, Usage.ENCRYPT_DECRYPT)
    assert key.bulk_key_id is not None
    return key.bulk_key_id


def _refused(setup: Setup, ids: dict, status: S) -> None:
    """The vendor's 1 MiB encrypt fails: the HSM refuses it with ``status``."""
    answer = fast_path(setup.device, AesOp.Encrypt, DATA, **ids)
    assert not answer.ok
    assert answer.ddi_status is status, answer


def test_aes_xts_encrypt_decrypt(setup: Setup) -> None:
    ids = _reopen(setup)
    keys = [setup.dev.aes_generate_key(AesKeySize.AesXtsBulk256).bulk_key_id for _ in range(2)]
    assert None not in keys
    ids.update(key_id=keys[0], key_id2=keys[1])
    data = DATA
    sealed = fast_path(setup.device, AesOp.Encrypt, data, **ids)
    assert sealed.ok, sealed
    assert len(sealed.data) == len(data) and sealed.data != data
    opened = fast_path(setup.device, AesOp.Decrypt, sealed.data, **ids)
    assert opened.ok, opened
    assert opened.data == data
    setup.dev.close_session()


def test_aes_xts_encrypt_with_identical_key_content(setup: Setup) -> None:
    ids = _reopen(setup)
    material = os.urandom(32)
    ids.update(key_id=_import(setup, material, KeyClass.AesXtsBulk),
               key_id2=_import(setup, material, KeyClass.AesXtsBulk))
    assert ids["key_id"] != ids["key_id2"]
    _refused(setup, ids, S.AesEncryptFailed)
    setup.dev.close_session()


def test_aes_xts_encrypt_with_gcm_key_in_the_mix(setup: Setup) -> None:
    ids = _reopen(setup)
    ids.update(key_id=_import(setup, os.urandom(32), KeyClass.AesXtsBulk),
               key_id2=_import(setup, os.urandom(32), KeyClass.AesGcmBulkUnapproved))
    assert ids["key_id"] != ids["key_id2"]
    _refused(setup, ids, S.InvalidKeyType)
    setup.dev.close_session()
