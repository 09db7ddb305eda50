"""Mirrors hmac.rs of the vendor's DDI integration tests (docs/conformance.md). The VarHmac tests
draw their key length at random in the vendor suite; here every length of each range is tried."""

from __future__ import annotations

from pyhsm.client import Usage
from pyhsm.protocol.ddi.types import EccCurve, KeyType
from tests.conformance.vendor import S, Setup, derive, ecdh_secret, expect, hmac_key

MSG = bytes(64)


def test_hmac_invalid_key_type(setup: Setup) -> None:
    ecc = setup.dev.ecc_generate_key_pair(EccCurve.P256, Usage.DERIVE)
    expect(S.InvalidKeyType, setup.dev.hmac, ecc.private_key_id, MSG)


def test_hmac_invalid_key(setup: Setup) -> None:
    expect(S.KeyNotFound, setup.dev.hmac, 20, MSG)


def test_hmac_no_session(setup: Setup) -> None:
    key_id = hmac_key(setup.dev, KeyType.HmacSha256).key_id
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "Hmac", {"key_id": key_id, "msg": MSG}, sess_id=None)


def test_hmac_invalid_session(setup: Setup) -> None:
    key_id = hmac_key(setup.dev, KeyType.HmacSha256).key_id
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "Hmac", {"key_id": key_id, "msg": MSG}, sess_id=21)


def test_hmac_sha256(setup: Setup) -> None:
    assert len(setup.dev.hmac(hmac_key(setup.dev, KeyType.HmacSha256).key_id, MSG)) == 32


def test_hmac_sha384(setup: Setup) -> None:
    assert len(setup.dev.hmac(hmac_key(setup.dev, KeyType.HmacSha384).key_id, MSG)) == 48


def test_hmac_sha512(setup: Setup) -> None:
    assert len(setup.dev.hmac(hmac_key(setup.dev, KeyType.HmacSha512).key_id, MSG)) == 64


def _var_hmac(setup: Setup, kind: KeyType, lengths: range, size: int) -> None:
    secret = ecdh_secret(setup.dev)
    for length in lengths:
        key = derive(setup.dev, secret.key_id, kind, length)
        assert len(setup.dev.hmac(key.key_id, MSG)) == size
        setup.dev.delete_key(key.key_id)


def test_var_hmac_sha256(setup: Setup) -> None:
    _var_hmac(setup, KeyType.VarHmac256, range(32, 65), 32)


def test_var_hmac_sha384(setup: Setup) -> None:
    _var_hmac(setup, KeyType.VarHmac384, range(48, 129), 48)


def test_var_hmac_sha512(setup: Setup) -> None:
    _var_hmac(setup, KeyType.VarHmac512, range(64, 129), 64)


def test_invalid_var_hmac_key(setup: Setup) -> None:
    secret = ecdh_secret(setup.dev)
    cases = [(KeyType.VarHmac256, range(0, 32)), (KeyType.VarHmac256, range(65, 256)),
             (KeyType.VarHmac384, range(0, 48)), (KeyType.VarHmac384, range(129, 256)),
             (KeyType.VarHmac512, range(0, 64)), (KeyType.VarHmac512, range(129, 256))]
    for kind, lengths in cases:
        for length in lengths:
            expect(S.InvalidKeyLength, derive, setup.dev, secret.key_id, kind, length)
