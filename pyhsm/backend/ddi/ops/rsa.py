"""RSA: the raw private operation and key import by unwrapping (docs/ddi.md, "Operations").

RsaModExp is the one primitive ``cryptography`` does not offer (x = y^d mod n without padding), so it
is computed here with Python integers. Side channels: Python's ``pow`` on big integers is *not*
constant-time (its running time depends on the exponent's bits and the operands' sizes). To keep
the secret exponent from being learnt through timing, the input is blinded with a fresh random r
(y' = y * r^e mod n, x = (y')^d * r^-1 mod n), so the exponentiation never runs on attacker-chosen
values; the CRT halves and the final comparison are still variable-time in the operand values.
"""

from __future__ import annotations

import secrets
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.keyformat import load_external_private, private_to_material
from pyhsm.backend.ddi.ops.common import (
    TagRule,
    bulk_id,
    create,
    enum_value,
    new_entry,
    private_key,
    properties,
    public_key_of,
    require_family,
    tag_of,
)
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import (
    AES_SIZES,
    ECC_BY_NAME,
    HASHES,
    RSA_PRIVATE,
    AesKeySize,
    Family,
    Flag,
    HashAlgorithm,
    KeyClass,
    KeyType,
    RsaOpType,
)

_OP_PERMISSION = {RsaOpType.Decrypt: Flag.ENCRYPT | Flag.DECRYPT, RsaOpType.Sign: Flag.SIGN | Flag.VERIFY}
_OP_FAILURE = {RsaOpType.Decrypt: DdiStatus.RsaDecryptFailed, RsaOpType.Sign: DdiStatus.RsaSignFailed}
_NON_CRT = {KeyType.Rsa2kPrivate, KeyType.Rsa3kPrivate, KeyType.Rsa4kPrivate}
_BULK_CLASSES = {KeyClass.AesXtsBulk: KeyType.AesXtsBulk256, KeyClass.AesGcmBulk: KeyType.AesGcmBulk256,
                 KeyClass.AesGcmBulkUnapproved: KeyType.AesGcmBulk256Unapproved}
_AES_BY_LENGTH = {16: AES_SIZES[AesKeySize.Aes128], 24: AES_SIZES[AesKeySize.Aes192],
                  32: AES_SIZES[AesKeySize.Aes256]}


def private_op(key: rsa.RSAPrivateKey, y: int) -> int:
    """x = y^d mod n, blinded, with CRT."""
    priv = key.private_numbers()
    n, e = priv.public_numbers.n, priv.public_numbers.e
    while True:
        r = secrets.randbelow(n - 2) + 2
        try:
            r_inv = pow(r, -1, n)
            break
        except ValueError:  # r shares a factor with n: astronomically unlikely
            continue
    blinded = y * pow(r, e, n) % n
    m1 = pow(blinded, priv.dmp1, priv.p)
    m2 = pow(blinded, priv.dmq1, priv.q)
    h = priv.iqmp * (m1 - m2) % priv.p
    return (m2 + h * priv.q) * r_inv % n


def rsa_mod_exp(call: Call, req: messages.DdiRsaModExpReq) -> messages.DdiRsaModExpResp:
    entry = call.vault.keys.use(req.key_id, call.app_id, call.active_session().sess_id)
    require_family(entry, Family.RSA)
    op = enum_value(RsaOpType, req.op_type, "RSA op type")
    entry.require(_OP_PERMISSION[op])
    key: rsa.RSAPrivateKey = private_key(entry)
    size = key.key_size // 8
    y = int.from_bytes(req.y, "big")
    n = key.public_key().public_numbers().n
    if call.physical and not 1 < y < n - 1:
        raise DdiFailure(DdiStatus.InvalidArg, "input outside 1 < y < n - 1 (FIPS range check)")
    if not req.y or len(req.y) > size or y >= n:
        raise DdiFailure(_OP_FAILURE[op], "input is empty or not below the modulus")
    with call.unlocked():
        x = private_op(key, y)
    return messages.DdiRsaModExpResp(x=x.to_bytes(size, "big"))


def _target(key_class: KeyClass, plain: bytes) -> tuple[KeyType, bytes, Any]:
    """(kind, stored material, private key object or None) of an unwrapped key."""
    if key_class in (KeyClass.Rsa, KeyClass.RsaCrt, KeyClass.Ecc):
        try:
            key = load_external_private(plain)
        except (ValueError, TypeError):
            raise DdiFailure(DdiStatus.KeyDecodeFailed, "unwrapped key is not a DER private key") from None
        if key_class is KeyClass.Ecc:
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in ECC_BY_NAME:
                raise DdiFailure(DdiStatus.KeyDecodeFailed, "not a P-256/384/521 key")
            return ECC_BY_NAME[key.curve.name][0], private_to_material(key), key
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DdiFailure(DdiStatus.KeyDecodeFailed, "not an RSA key")
        kind = RSA_PRIVATE.get((key.key_size, key_class is KeyClass.RsaCrt))
        if kind is None:
            raise DdiFailure(DdiStatus.RsaInvalidKeyLength, f"RSA-{key.key_size} is not supported")
        return kind, private_to_material(key), key
    if key_class is KeyClass.Aes:
        if len(plain) not in _AES_BY_LENGTH:
            raise DdiFailure(DdiStatus.AesInvalidKeyLength, f"AES key of {len(plain)} bytes")
        return _AES_BY_LENGTH[len(plain)], plain, None
    if len(plain) != 32:
        raise DdiFailure(DdiStatus.AesInvalidKeyLength, "bulk keys are 32 bytes")
    return _BULK_CLASSES[key_class], plain, None


def rsa_unwrap(call: Call, req: messages.DdiRsaUnwrapReq) -> messages.DdiRsaUnwrapResp:
    kek_entry = call.vault.keys.use(req.key_id, call.app_id, call.active_session().sess_id)
    require_family(kek_entry, Family.RSA)
    kek_entry.require(Flag.UNWRAP)
    if kek_entry.kind not in _NON_CRT:
        raise DdiFailure(DdiStatus.RsaUnwrapInvalidKek, "the KEK must be a non-CRT RSA private key")
    key_class = enum_value(KeyClass, req.wrapped_blob_key_class, "key class")
    if req.wrapped_blob_padding != 1:
        raise DdiFailure(DdiStatus.InvalidArg, "only OAEP padding is supported")
    hash_cls = HASHES[enum_value(HashAlgorithm, req.wrapped_blob_hash_algorithm, "hash algorithm")]
    kek: rsa.RSAPrivateKey = private_key(kek_entry)
    size = kek.key_size // 8
    if len(req.wrapped_blob) <= size:
        raise DdiFailure(DdiStatus.RsaUnwrapInvalidRequest, "blob is not longer than the KEK modulus")
    try:
        aes_key = kek.decrypt(req.wrapped_blob[:size], padding.OAEP(padding.MGF1(hash_cls()), hash_cls(), None))
    except ValueError:
        raise DdiFailure(DdiStatus.RsaUnwrapOaepDecodeFailed, "OAEP decryption failed") from None
    try:
        plain = aes_key_unwrap_with_padding(aes_key, req.wrapped_blob[size:])
    except (InvalidUnwrap, ValueError):
        raise DdiFailure(DdiStatus.RsaUnwrapAesUnwrapFailed, "AES-KWP unwrap failed") from None
    kind, material, private = _target(key_class, plain)
    props = properties(req.key_properties, kind)
    tag = tag_of(req.key_tag, props, TagRule.ZERO_REJECTED)
    entry = new_entry(call, kind, material, props, tag, local=False, private=private)
    key_id, masked = create(call, entry)
    return messages.DdiRsaUnwrapResp(key_id=key_id, pub_key=public_key_of(entry),
                                     bulk_key_id=bulk_id(entry, key_id), kind=int(kind), masked_key=masked)


HANDLERS: dict[str, Handler] = {
    "RsaModExp": rsa_mod_exp,
    "RsaUnwrap": rsa_unwrap,
}
