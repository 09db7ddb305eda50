"""The bodies of secret_hkdf_derive.rs and secret_kbkdf_derive.rs: keys derived from ECDH secrets by
HkdfDerive or KbkdfCounterHmacDerive (``op``); ``a``/``b`` are the op's two optional inputs
(salt/info or label/context). Two derivations with the same inputs from the two sides' secrets give
the same key, which the AES-CBC and HMAC round trips prove."""

from __future__ import annotations

from typing import Any

from pyhsm.client import HsmClient, Usage, key_properties
from pyhsm.protocol.ddi.types import AesOp, EccCurve, HashAlgorithm, KeyType
from tests.conformance.masked_derive_cases import derive_key
from tests.conformance.vendor import (
    CRED_ID,
    CRED_PIN,
    SESSION_SEED,
    S,
    Setup,
    ecc_key_pair,
    ecdh_secret_pair,
    expect,
    fast_path,
    physical_only,
)

MSG = bytes([1]) * 512
IV = bytes(16)
_INPUTS = {"HkdfDerive": ("salt", "info"), "KbkdfCounterHmacDerive": ("label", "context")}
_XTS_DATA = {"HkdfDerive": 1024 * 1024, "KbkdfCounterHmacDerive": 1024}   # the vendor helpers' XTS data


def _fields(op: str, secret_id: int, kind: KeyType, usage: Usage) -> dict[str, Any]:
    first, second = _INPUTS[op]
    return {"key_id": secret_id, "hash_algorithm": int(HashAlgorithm.Sha256), first: None, second: None,
            "key_type": int(kind), "key_tag": None, "key_properties": key_properties(usage), "key_length": None}


def _round_trip(dev: HsmClient, encrypt_id: int, decrypt_id: int) -> None:
    sealed = dev.aes_encrypt_decrypt(encrypt_id, AesOp.Encrypt, MSG, IV).msg
    assert dev.aes_encrypt_decrypt(decrypt_id, AesOp.Decrypt, sealed, IV).msg == MSG


def wrong_session(setup: Setup, op: str, sess_id: int | None) -> None:
    secret = ecdh_secret_pair(setup.dev)[0]
    expect(S.FileHandleSessionIdDoesNotMatch, setup.dev.request, op,
           _fields(op, secret, KeyType.Aes256, Usage.ENCRYPT_DECRYPT), sess_id=sess_id)


def invalid_input_key_type(setup: Setup, op: str) -> None:
    ecc = ecc_key_pair(setup.dev, EccCurve.P256).private_key_id
    expect(S.InvalidKeyType, setup.dev.call, op, **_fields(op, ecc, KeyType.Secret256, Usage.DERIVE))


def invalid_output(setup: Setup, op: str, kind: KeyType, usage: Usage, status: S) -> None:
    secret = ecdh_secret_pair(setup.dev)[0]
    expect(status, setup.dev.call, op, **_fields(op, secret, kind, usage))


def different_inputs(setup: Setup, op: str, inputs: list[tuple[bytes | None, bytes | None]]) -> None:
    """The same secret with the two ``inputs`` (an input one zero byte longer) gives two different keys."""
    dev = setup.dev
    secret = ecdh_secret_pair(dev)[0]
    keys = [derive_key(dev, op, secret, HashAlgorithm.Sha256, a, b, KeyType.Aes256).key_id for a, b in inputs]
    sealed = dev.aes_encrypt_decrypt(keys[0], AesOp.Encrypt, MSG, IV).msg
    assert dev.aes_encrypt_decrypt(keys[1], AesOp.Decrypt, sealed, IV).msg != MSG


def derive_pair(setup: Setup, op: str, algo: HashAlgorithm, a: bytes | None, b: bytes | None, kind: KeyType,
                tag: int | None = None) -> tuple[int, int]:
    """test_secret_*_helper: the key from each side's secret (the first with ``tag``); they match."""
    dev = setup.dev
    secret1, secret2 = ecdh_secret_pair(dev)
    first = derive_key(dev, op, secret1, algo, a, b, kind, tag).key_id
    second = derive_key(dev, op, secret2, algo, a, b, kind).key_id
    _round_trip(dev, first, second)
    return first, second


def named(setup: Setup, op: str, a: bytes, b: bytes) -> None:
    first, _ = derive_pair(setup, op, HashAlgorithm.Sha256, a, b, KeyType.Aes256, tag=0x6677)
    opened = setup.dev.open_key(0x6677)
    assert (opened.key_id, opened.key_kind, opened.pub_key) == (first, KeyType.Aes256, None)


def bulk(setup: Setup, op: str, a: bytes, b: bytes, kind: KeyType, secret: KeyType) -> None:
    """Physical only: the session reopened (short app id) and bulk keys derived from both sides'
    secrets, then a fast-path round trip, encrypting with the first side's keys and decrypting with
    the second's. GCM: one key per side, 16 KiB. XTS: per side a data key (no inputs) and a tweak key
    (``a``, ``b``); the vendor's HKDF helper derives the first data key from the second secret, and
    sends 1 MiB as one data unit, exactly our device's largest AES transfer per direction (KBKDF
    sends 1 KiB)."""
    physical_only(setup)
    dev = setup.dev
    dev.close_session()
    opened = dev.open_session(CRED_ID, CRED_PIN, SESSION_SEED)
    secret1, secret2 = ecdh_secret_pair(dev, secret)

    def bulk_key(secret_id: int, x: bytes | None, y: bytes | None) -> int:
        derived = derive_key(dev, op, secret_id, HashAlgorithm.Sha256, x, y, kind)
        assert derived.bulk_key_id is not None
        return derived.bulk_key_id

    ids = dict(session_id=opened.sess_id, short_app_id=opened.short_app_id)
    if kind is KeyType.AesGcmBulk256Unapproved:
        data = bytes([1]) * 16384
        ids.update(iv=bytes([3]) * 12, aad=bytes([4]) * 32)
        sealing = dict(key_id=bulk_key(secret1, a, b))
        opening = dict(key_id=bulk_key(secret2, a, b))
    else:
        data = bytes([1]) * _XTS_DATA[op]
        ids.update(tweak=bytes([4]) * 16)
        first = secret2 if op == "HkdfDerive" else secret1
        sealing = dict(key_id=bulk_key(first, None, None), key_id2=bulk_key(secret1, a, b))
        opening = dict(key_id=bulk_key(secret2, None, None), key_id2=bulk_key(secret2, a, b))
    sealed = fast_path(setup.device, AesOp.Encrypt, data, **ids, **sealing)
    assert sealed.ok, sealed
    assert len(sealed.data) == len(data) and sealed.data != data
    plain = fast_path(setup.device, AesOp.Decrypt, sealed.data, tag=sealed.tag, **ids, **opening)
    assert plain.ok, plain
    assert plain.data == data
    dev.close_session()


def aes_hmac(setup: Setup, op: str, a: bytes, b: bytes, aes: KeyType, hmac: KeyType, size: int) -> None:
    """An AES and an HMAC key from each side: CBC round trip, equal HMAC tags of ``size`` bytes."""
    dev = setup.dev
    secret1, secret2 = ecdh_secret_pair(dev)
    aes1, aes2 = (derive_key(dev, op, s, HashAlgorithm.Sha256, a, b, aes).key_id for s in (secret1, secret2))
    first, second = _INPUTS[op]
    macs = [dev.call(op, key_id=s, hash_algorithm=int(HashAlgorithm.Sha256), **{first: a, second: b},
                     key_type=int(hmac), key_tag=None, key_properties=key_properties(Usage.SIGN_VERIFY),
                     key_length=None).key_id for s in (secret1, secret2)]
    sealed = dev.aes_encrypt_decrypt(aes1, AesOp.Encrypt, MSG, IV).msg
    tag = dev.hmac(macs[0], sealed)
    assert len(tag) == size and dev.hmac(macs[1], sealed) == tag
    assert dev.aes_encrypt_decrypt(aes2, AesOp.Decrypt, sealed, IV).msg == MSG


def and_unmask(setup: Setup, op: str, a: bytes, b: bytes) -> None:
    """The vendor checks this on a Virtual device only; ours unmasks under both profiles."""
    dev = setup.dev
    secret1, secret2 = ecdh_secret_pair(dev)
    key = derive_key(dev, op, secret1, HashAlgorithm.Sha256, a, b, KeyType.Aes256)
    unmasked = dev.unmask_key(key.masked_key).key_id
    assert unmasked != key.key_id
    _round_trip(dev, unmasked, derive_key(dev, op, secret2, HashAlgorithm.Sha256, a, b, KeyType.Aes256).key_id)


def and_unmask_ecdh_key(setup: Setup, op: str, a: bytes, b: bytes) -> None:
    """The first ECDH secret used through its unmasked copy."""
    dev = setup.dev
    first, second = ecc_key_pair(dev, EccCurve.P256), ecc_key_pair(dev, EccCurve.P256)
    secret = dev.ecdh_key_exchange(first.private_key_id, second.pub_key.der, KeyType.Secret256)
    unmasked = dev.unmask_key(secret.masked_key).key_id
    assert unmasked != secret.key_id
    other = dev.ecdh_key_exchange(second.private_key_id, first.pub_key.der, KeyType.Secret256).key_id
    _round_trip(dev, derive_key(dev, op, unmasked, HashAlgorithm.Sha256, a, b, KeyType.Aes256).key_id,
                derive_key(dev, op, other, HashAlgorithm.Sha256, a, b, KeyType.Aes256).key_id)
