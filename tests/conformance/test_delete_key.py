"""Mirrors delete_key.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

from pyhsm.client import Usage
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, KeyClass
from tests.conformance.vendor import S, Setup, expect, rsa_wrapped


def _create_key(setup: Setup) -> int:
    return setup.dev.aes_generate_key(AesKeySize.Aes128).key_id


def test_delete_key_no_session(setup: Setup) -> None:
    key_id = _create_key(setup)
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "DeleteKey", {"key_id": key_id}, sess_id=None)


def test_delete_key_incorrect_session_id(setup: Setup) -> None:
    key_id = _create_key(setup)
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "DeleteKey", {"key_id": key_id}, sess_id=20)


def test_delete_key_incorrect_key_num_table(setup: Setup) -> None:
    # the vendor asserts only a failure; our 4 tables make table 3 slot 0 an empty slot
    expect(S.KeyNotFound, setup.dev.delete_key, 0x0300)


def test_delete_key_incorrect_key_num_entry(setup: Setup) -> None:
    expect(S.KeyNotFound, setup.dev.delete_key, 0x0020)


def test_delete_key_unwrapping_key(setup: Setup) -> None:
    expect(S.CannotDeleteInternalKeys, setup.dev.delete_key, setup.dev.get_unwrapping_key().key_id)


def test_delete_key(setup: Setup) -> None:
    key_id = _create_key(setup)
    setup.dev.delete_key(key_id)
    expect(S.KeyNotFound, setup.dev.aes_encrypt_decrypt, key_id, AesOp.Encrypt, bytes([1]) * 512, bytes(16))


def test_delete_key_multiple(setup: Setup) -> None:
    key_id = _create_key(setup)
    setup.dev.delete_key(key_id)
    expect(S.KeyNotFound, setup.dev.delete_key, key_id)


def test_import_delete_aesbulk256_key(setup: Setup) -> None:
    tables = setup.dev.get_device_info().tables
    blob = rsa_wrapped(setup.dev, 2048)
    kek = setup.dev.get_unwrapping_key().key_id
    key_ids = [setup.dev.rsa_unwrap(kek, blob, KeyClass.Rsa, Usage.ENCRYPT_DECRYPT, tag=i + 1).key_id
               for i in range(tables * 7)]
    for i, key_id in enumerate(key_ids):
        setup.dev.delete_key(key_id)
        expect(S.KeyNotFound, setup.dev.open_key, i + 1)
