"""Mirrors rsa_mod_exp.rs of the vendor's DDI integration tests (docs/conformance.md)."""

from __future__ import annotations

import pytest

from pyhsm.client import DdiError, Usage
from pyhsm.protocol.ddi.types import AesKeySize, KeyClass, RsaOpType
from tests.conformance.vendor import S, Setup, expect, rsa_import, rsa_test_key

Y = bytes([1]) * 256


def _key(setup: Setup, usage: Usage = Usage.ENCRYPT_DECRYPT) -> int:
    """store_rsa_keys_no_crt: the suite's 2k key imported with ``usage``."""
    return rsa_import(setup.dev, 2048, KeyClass.Rsa, usage).key_id


def _fields(key_id: int) -> dict:
    return {"key_id": key_id, "y": Y, "op_type": int(RsaOpType.Decrypt)}


def test_rsa_mod_exp_no_session(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "RsaModExp", _fields(_key(setup)), sess_id=None)


def test_rsa_mod_exp_incorrect_session_id(setup: Setup) -> None:
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "RsaModExp", _fields(_key(setup)), sess_id=20)


def test_rsa_mod_exp_incorrect_key_num_table(setup: Setup) -> None:
    with pytest.raises(DdiError):
        setup.dev.rsa_mod_exp(0x0300, Y, RsaOpType.Decrypt)


def test_rsa_mod_exp_incorrect_key_num_entry(setup: Setup) -> None:
    expect(S.KeyNotFound, setup.dev.rsa_mod_exp, 0x0020, Y, RsaOpType.Decrypt)


def test_rsa_mod_exp_incorrect_key_type(setup: Setup) -> None:
    aes = setup.dev.aes_generate_key(AesKeySize.Aes256).key_id
    expect(S.InvalidKeyType, setup.dev.rsa_mod_exp, aes, Y, RsaOpType.Decrypt)


def test_rsa_mod_exp_incorrect_permissions(setup: Setup) -> None:
    expect(S.InvalidPermissions, setup.dev.rsa_mod_exp, _key(setup, Usage.SIGN_VERIFY), Y, RsaOpType.Decrypt)


def test_rsa_mod_exp(setup: Setup) -> None:
    key = rsa_test_key(2048)
    x = setup.dev.rsa_mod_exp(_key(setup), Y, RsaOpType.Decrypt)
    numbers = key.private_numbers()
    assert int.from_bytes(x, "big") == pow(int.from_bytes(Y, "big"), numbers.d, numbers.public_numbers.n)


def test_rsa_mod_exp_encrypt_and_decrypt(setup: Setup) -> None:
    """Raw (unpadded) RSA of 256 bytes of 0x01 on the host; the device's private operation undoes it."""
    public = rsa_test_key(2048).public_key().public_numbers()
    y = pow(int.from_bytes(Y, "big"), public.e, public.n).to_bytes(256, "big")
    assert setup.dev.rsa_mod_exp(_key(setup), y, RsaOpType.Decrypt) == Y
