"""The bodies of the vendor's three RSA sign test files (rsa_{2k,3k,4k}_sign.rs): the raw private
operation (RsaModExp, Sign) on imported keys of one size, without and with CRT. The vendor compares
signatures of its fixed key with fixed values; with our own key the expected signature is the host's
PKCS#1 v1.5 or PSS (salt length 0, so deterministic) signature of the same digest, and the device
gets that signature's encoded message (signature^e mod n) to sign."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from pyhsm.client import DdiError, Usage
from pyhsm.protocol.ddi.types import EccCurve, KeyClass, RsaOpType
from tests.conformance.vendor import S, Setup, ecc_key_pair, expect, physical_only, rsa_import, rsa_test_key

OP = RsaOpType.Sign
HASHES = {20: hashes.SHA1(), 32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}


def _keys(setup: Setup, bits: int, usage: Usage = Usage.SIGN_VERIFY) -> tuple[int, int]:
    """store_rsa_keys_no_crt and store_rsa_keys_crt: the suite's key imported in both forms."""
    return (rsa_import(setup.dev, bits, KeyClass.Rsa, usage).key_id,
            rsa_import(setup.dev, bits, KeyClass.RsaCrt, usage).key_id)


def wrong_session(setup: Setup, bits: int, sess_id: int | None) -> None:
    for key_id in _keys(setup, bits):
        expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "RsaModExp",
               {"key_id": key_id, "y": bytes([1]) * 32, "op_type": int(OP)}, sess_id=sess_id)


def incorrect_key_num(setup: Setup, key_id: int) -> None:
    with pytest.raises(DdiError) as info:
        setup.dev.rsa_mod_exp(key_id, bytes([1]) * 32, OP)
    assert info.value.status is S.KeyNotFound


def incorrect_key_type(setup: Setup) -> None:
    ecc = ecc_key_pair(setup.dev, EccCurve.P256, Usage.SIGN_VERIFY).private_key_id
    expect(S.InvalidKeyType, setup.dev.rsa_mod_exp, ecc, bytes([1]) * 32, OP)


def incorrect_permission(setup: Setup, bits: int) -> None:
    key_id = rsa_import(setup.dev, bits, KeyClass.Rsa, Usage.ENCRYPT_DECRYPT).key_id
    expect(S.InvalidPermissions, setup.dev.rsa_mod_exp, key_id, bytes([1]) * 32, OP)


def out_of_range(setup: Setup, bits: int, y: bytes) -> None:
    """Physical only: y <= 1 or y >= n - 1 is InvalidArg for both key forms."""
    physical_only(setup)
    for key_id in _keys(setup, bits):
        expect(S.InvalidArg, setup.dev.rsa_mod_exp, key_id, y, OP)


def sign_and_verify(setup: Setup, bits: int, pss: bool, digest_len: int) -> None:
    key = rsa_test_key(bits)
    algorithm = HASHES[digest_len]
    scheme = padding.PSS(padding.MGF1(algorithm), 0) if pss else padding.PKCS1v15()
    digest = bytes([1]) * digest_len
    expected = key.sign(digest, scheme, Prehashed(algorithm))
    numbers = key.public_key().public_numbers()
    encoded = pow(int.from_bytes(expected, "big"), numbers.e, numbers.n).to_bytes(bits // 8, "big")
    no_crt, crt = (setup.dev.rsa_mod_exp(key_id, encoded, OP) for key_id in _keys(setup, bits))
    assert no_crt == crt == expected
    key.public_key().verify(no_crt, digest, scheme, Prehashed(algorithm))
