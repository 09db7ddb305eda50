"""The bodies of the vendor's six RSA decrypt test files (rsa_{2k,3k,4k}_decrypt_{no,with}_crt.rs):
nine cases of the raw private operation (RsaModExp, Decrypt) on an imported key of one size and form;
``test_rsa_*_decrypt_*.py`` name them per file."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from pyhsm.client import HsmClient
from pyhsm.protocol.ddi.types import AesKeySize, KeyClass, RsaOpType
from tests.conformance.vendor import S, Setup, expect, physical_only, rsa_import, rsa_test_key

OP = RsaOpType.Decrypt


def _key(setup: Setup, bits: int, crt: bool) -> int:
    """store_rsa_keys_(no_)crt: the suite's key imported for encrypt/decrypt."""
    return rsa_import(setup.dev, bits, KeyClass.RsaCrt if crt else KeyClass.Rsa).key_id


def _fields(key_id: int, y: bytes) -> dict:
    return {"key_id": key_id, "y": y, "op_type": int(OP)}


def no_session(setup: Setup, bits: int, crt: bool) -> None:
    key_id = _key(setup, bits, crt)
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "RsaModExp", _fields(key_id, bytes([1]) * (bits // 8)),
           sess_id=None)


def incorrect_session_id(setup: Setup, bits: int, crt: bool) -> None:
    key_id = _key(setup, bits, crt)
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "RsaModExp", _fields(key_id, bytes([1]) * (bits // 8)),
           sess_id=20)


def incorrect_key_num(setup: Setup, bits: int, key_id: int) -> None:
    # the vendor asserts only a failure for table 3; with our 4 tables that slot is simply empty
    expect(S.KeyNotFound, setup.dev.rsa_mod_exp, key_id, bytes([1]) * (bits // 8), OP)


def incorrect_key_type(setup: Setup, bits: int) -> None:
    aes = setup.dev.aes_generate_key(AesKeySize.Aes256).key_id
    expect(S.InvalidKeyType, setup.dev.rsa_mod_exp, aes, bytes([1]) * (bits // 8), OP)


def below_lower_limit(setup: Setup, bits: int, crt: bool) -> None:
    physical_only(setup)
    key_id = _key(setup, bits, crt)
    expect(S.InvalidArg, setup.dev.rsa_mod_exp, key_id, bytes(bits // 8 - 1) + b"\x01", OP)


def above_upper_limit(setup: Setup, bits: int, crt: bool) -> None:
    physical_only(setup)
    key_id = _key(setup, bits, crt)
    expect(S.InvalidArg, setup.dev.rsa_mod_exp, key_id, b"\xff" * (bits // 8), OP)


def decrypt(setup: Setup, bits: int, crt: bool) -> None:
    x = setup.dev.rsa_mod_exp(_key(setup, bits, crt), bytes([1]) * (bits // 8), OP)
    assert len(x) == bits // 8


def encrypt_and_decrypt(setup: Setup, bits: int, crt: bool) -> None:
    """OAEP-SHA-256 of the longest message on the host; the device's raw result, OAEP-decoded by the
    host, gives the message back."""
    dev: HsmClient = setup.dev
    message = bytes([1]) * (bits // 8 - 66)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    key = rsa_test_key(bits)
    encoded = dev.rsa_mod_exp(_key(setup, bits, crt), key.public_key().encrypt(message, oaep), OP)
    # re-encrypting the device's raw output with the public key and decrypting it on the host proves
    # it is the OAEP encoding of the message
    assert key.decrypt(pow(int.from_bytes(encoded, "big"), key.public_key().public_numbers().e,
                           key.public_key().public_numbers().n).to_bytes(bits // 8, "big"), oaep) == message
