"""The bodies of the vendor's three ECDH test files (ecdh_256/384/521_key_exchange.rs), which run the
same sixteen cases on one curve each; ``test_ecdh_*_key_exchange.py`` name them per curve."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import EncodeError, Usage, key_properties
from pyhsm.protocol.ddi.physical import _ECC
from pyhsm.protocol.ddi.types import CURVES, EccCurve, KeyType
from tests.conformance.vendor import S, Setup, ecc_key_pair, expect, physical_only

SECRETS = {EccCurve.P256: KeyType.Secret256, EccCurve.P384: KeyType.Secret384, EccCurve.P521: KeyType.Secret521}


def _pair(setup: Setup, curve: EccCurve) -> tuple:
    """helper_create_ecc_key_pairs: two derive key pairs on ``curve``."""
    return ecc_key_pair(setup.dev, curve), ecc_key_pair(setup.dev, curve)


def _fields(priv: int, peer: bytes, kind: KeyType, usage: Usage = Usage.DERIVE, tag: int | None = None) -> dict:
    return {"priv_key_id": priv, "pub_key_der": peer, "key_type": int(kind), "key_tag": tag,
            "key_properties": key_properties(usage)}


def point_der(curve: EccCurve, x: int, y: int) -> bytes:
    """SubjectPublicKeyInfo DER of an arbitrary (possibly invalid) uncompressed point on ``curve``."""
    size = _ECC[CURVES[curve][2]][1]
    template = ec.generate_private_key(CURVES[curve][0]).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return template[:-2 * size] + x.to_bytes(size, "big") + y.to_bytes(size, "big")


def field_prime(curve: EccCurve) -> int:
    return _ECC[CURVES[curve][2]][3]


def no_session(setup: Setup, curve: EccCurve) -> None:
    first, second = _pair(setup, curve)
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "EcdhKeyExchange",
           _fields(first.private_key_id, second.pub_key.der, SECRETS[curve]), sess_id=None)


def incorrect_session_id(setup: Setup, curve: EccCurve) -> None:
    first, second = _pair(setup, curve)
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, "EcdhKeyExchange",
           _fields(first.private_key_id, second.pub_key.der, SECRETS[curve]), sess_id=20)


def incorrect_private_key_num(setup: Setup, curve: EccCurve) -> None:
    _, second = _pair(setup, curve)
    expect(S.KeyNotFound, setup.dev.ecdh_key_exchange, 0x0020, second.pub_key.der, SECRETS[curve])


def incorrect_public_key_size(setup: Setup, curve: EccCurve) -> None:
    first, second = _pair(setup, curve)
    with pytest.raises((EncodeError, Exception)) as info:   # the vendor accepts an encode error or a status
        setup.dev.ecdh_key_exchange(first.private_key_id, second.pub_key.der[:1], SECRETS[curve])
    assert isinstance(info.value, EncodeError) if setup.physical else info.value.status is S.KeyDecodeFailed


def incorrect_target_key(setup: Setup, curve: EccCurve, kind: KeyType) -> None:
    first, second = _pair(setup, curve)
    expect(S.InvalidKeyType, setup.dev.ecdh_key_exchange, first.private_key_id, second.pub_key.der, kind)


def incorrect_target_key_usage(setup: Setup, curve: EccCurve) -> None:
    first, second = _pair(setup, curve)
    expect(S.InvalidPermissions, setup.dev.call, "EcdhKeyExchange",
           **_fields(first.private_key_id, second.pub_key.der, SECRETS[curve], Usage.SIGN_VERIFY))


def incorrect_input_key_usage(setup: Setup, curve: EccCurve) -> None:
    first, _ = _pair(setup, curve)
    signer = ecc_key_pair(setup.dev, curve, Usage.SIGN_VERIFY)
    expect(S.InvalidPermissions, setup.dev.ecdh_key_exchange, signer.private_key_id, first.pub_key.der, SECRETS[curve])
    assert setup.dev.ecdh_key_exchange(first.private_key_id, signer.pub_key.der, SECRETS[curve]).key_id


def mismatch_input_size(setup: Setup, curve: EccCurve, other: EccCurve) -> None:
    """A peer key on another curve fails both ways (the vendor asserts only a failure)."""
    first, _ = _pair(setup, curve)
    third = ecc_key_pair(setup.dev, other)
    expect(S.DerAndKeyTypeMismatch, setup.dev.ecdh_key_exchange, third.private_key_id, first.pub_key.der,
           SECRETS[other])
    expect(S.DerAndKeyTypeMismatch, setup.dev.ecdh_key_exchange, first.private_key_id, third.pub_key.der,
           SECRETS[curve])


def invalid_point(setup: Setup, curve: EccCurve, which: str) -> None:
    physical_only(setup)
    first, second = _pair(setup, curve)
    nums = serialization.load_der_public_key(second.pub_key.der).public_numbers()
    p = field_prime(curve)
    if which == "infinity":
        template = point_der(curve, nums.x, nums.y)
        size = _ECC[CURVES[curve][2]][1]
        with pytest.raises(EncodeError):
            setup.dev.ecdh_key_exchange(first.private_key_id, template[:-2 * size - 1] + b"\x00", SECRETS[curve])
        return
    x, y, status = {"x": (p, nums.y, S.EccPublicKeyValidationFailed),
                    "y": (nums.x, p, S.EccPublicKeyValidationFailed),
                    "curve": (nums.x, (nums.y + 1) % p, S.EccPointValidationFailed)}[which]
    expect(status, setup.dev.ecdh_key_exchange, first.private_key_id, point_der(curve, x, y), SECRETS[curve])


def exchange(setup: Setup, curve: EccCurve) -> None:
    first, second = _pair(setup, curve)
    one = setup.dev.ecdh_key_exchange(first.private_key_id, second.pub_key.der, SECRETS[curve])
    two = setup.dev.ecdh_key_exchange(second.private_key_id, first.pub_key.der, SECRETS[curve])
    assert one.key_id != two.key_id and one.masked_key and two.masked_key


def key_tag(setup: Setup, curve: EccCurve) -> None:
    first, second = _pair(setup, curve)
    setup.dev.ecdh_key_exchange(first.private_key_id, second.pub_key.der, SECRETS[curve], tag=0x6677)
    opened = setup.dev.open_key(0x6677)
    assert opened.key_kind == SECRETS[curve] and opened.pub_key is None
