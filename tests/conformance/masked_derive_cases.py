"""The bodies of masked_key_hkdf_derive.rs and masked_key_kbkdf_derive.rs: a key derived from an ECDH
secret, its masked blob unmasked again after DeleteKey, checked against the same derivation from the
other side's secret. ``op`` is HkdfDerive or KbkdfCounterHmacDerive; ``a``/``b`` are its two optional
inputs (salt/info or label/context)."""

from __future__ import annotations

from pyhsm.client import HsmClient, Usage, key_properties
from pyhsm.protocol.ddi.types import AesOp, HashAlgorithm, KeyType
from tests.conformance.vendor import (
    CRED_ID,
    CRED_PIN,
    SESSION_SEED,
    Setup,
    ecdh_secret_pair,
    fast_path,
    physical_only,
    unmask_again,
)

MSG = bytes([1]) * 512
_INPUTS = {"HkdfDerive": ("salt", "info"), "KbkdfCounterHmacDerive": ("label", "context")}


def derive_key(dev: HsmClient, op: str, secret_id: int, algo: HashAlgorithm, a: bytes | None, b: bytes | None,
               kind: KeyType, tag: int | None = None) -> object:
    first, second = _INPUTS[op]
    return dev.call(op, key_id=secret_id, hash_algorithm=int(algo), **{first: a, second: b}, key_type=int(kind),
                    key_tag=tag, key_properties=key_properties(Usage.ENCRYPT_DECRYPT), key_length=None)


def masked_derive(setup: Setup, op: str, algo: HashAlgorithm, a: bytes | None, b: bytes | None,
                  kind: KeyType) -> None:
    dev = setup.dev
    secret1, secret2 = ecdh_secret_pair(dev)
    key = derive_key(dev, op, secret1, algo, a, b, kind, tag=1)
    again = unmask_again(dev, key.key_id, key.masked_key).key_id
    other = derive_key(dev, op, secret2, algo, a, b, kind).key_id
    sealed = dev.aes_encrypt_decrypt(again, AesOp.Encrypt, MSG, bytes(16)).msg
    assert dev.aes_encrypt_decrypt(other, AesOp.Decrypt, sealed, bytes(16)).msg == MSG


def masked_derive_gcm(setup: Setup, op: str, a: bytes, b: bytes, secret: KeyType) -> None:
    """Physical only: the session reopened (short app id), a GCM bulk key derived, unmasked again
    (a new bulk key) and derived from the other side; 16 KiB through the fast path with the first,
    back with the second."""
    physical_only(setup)
    dev = setup.dev
    dev.close_session()
    opened = dev.open_session(CRED_ID, CRED_PIN, SESSION_SEED)
    assert dev.session_id == opened.sess_id
    secret1, secret2 = ecdh_secret_pair(dev, secret)
    key = derive_key(dev, op, secret1, HashAlgorithm.Sha256, a, b, KeyType.AesGcmBulk256Unapproved, tag=1)
    again = unmask_again(dev, key.key_id, key.masked_key).bulk_key_id
    assert again is not None
    other = derive_key(dev, op, secret2, HashAlgorithm.Sha256, a, b, KeyType.AesGcmBulk256Unapproved).bulk_key_id
    assert other is not None
    data = bytes([1]) * 16384
    ids = dict(session_id=opened.sess_id, short_app_id=opened.short_app_id, iv=bytes([3]) * 12, aad=bytes([4]) * 32)
    sealed = fast_path(setup.device, AesOp.Encrypt, data, key_id=again, **ids)
    assert sealed.ok, sealed
    assert len(sealed.data) == len(data) and sealed.data != data
    plain = fast_path(setup.device, AesOp.Decrypt, sealed.data, key_id=other, tag=sealed.tag, **ids)
    assert plain.ok, plain
    assert plain.data == data
    dev.close_session()
