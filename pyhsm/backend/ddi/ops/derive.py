"""HKDF, SP 800-108 KBKDF and HMAC on device keys (docs/ddi.md, "Key derivation")."""

from __future__ import annotations

from typing import Callable

from cryptography.hazmat.primitives import hmac

from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.ops.common import (
    TagRule,
    bulk_id,
    create,
    enum_value,
    new_entry,
    properties,
    require_family,
    tag_of,
)
from pyhsm.crypto import kdf
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import (
    DERIVED_LENGTHS,
    HASHES,
    HMAC_HASHES,
    VAR_HMAC_LENGTHS,
    Family,
    Flag,
    HashAlgorithm,
    KeyType,
)


def _target(requested: int, key_length: int | None) -> tuple[KeyType, int]:
    """The kind to derive and its length in bytes: the fixed size of AES/HMAC kinds (key_length
    ignored), or for VarHmac the requested key_length within VAR_HMAC_LENGTHS (InvalidArg if absent,
    InvalidKeyLength outside); InvalidKeyType for any other type."""
    try:
        kind = KeyType(requested)
    except ValueError:
        raise DdiFailure(DdiStatus.InvalidKeyType, f"cannot derive key type {requested}") from None
    if kind in DERIVED_LENGTHS:
        return kind, DERIVED_LENGTHS[kind]
    if kind not in VAR_HMAC_LENGTHS:
        raise DdiFailure(DdiStatus.InvalidKeyType, f"cannot derive key type {requested}")
    if key_length is None:
        raise DdiFailure(DdiStatus.InvalidArg, f"{kind.name} needs key_length")
    low, high = VAR_HMAC_LENGTHS[kind]
    if not low <= key_length <= high:
        raise DdiFailure(DdiStatus.InvalidKeyLength, f"{kind.name} key_length {key_length} outside {low}-{high}")
    return kind, key_length


def _derive(call: Call, req: messages.DdiHkdfDeriveReq | messages.DdiKbkdfCounterHmacDeriveReq,
            fn: Callable[..., bytes], a: bytes | None, b: bytes | None) -> tuple[int, bytes, int | None]:
    """Derive and store a key; returns (key id, masked blob, bulk key id)."""
    entry = call.vault.keys.use(req.key_id, call.app_id, call.active_session().sess_id)
    require_family(entry, Family.SECRET)
    entry.require(Flag.DERIVE)
    hash_cls = HASHES[enum_value(HashAlgorithm, req.hash_algorithm, "hash algorithm")]
    kind, length = _target(req.key_type, req.key_length)
    props = properties(req.key_properties, kind)
    tag = tag_of(req.key_tag, props, TagRule.ZERO_REJECTED)
    material = fn(hash_cls, entry.material, a, b, length)
    entry = new_entry(call, kind, material, props, tag, local=call.physical)
    key_id, masked = create(call, entry)
    return key_id, masked, bulk_id(entry, key_id)


def hkdf_derive(call: Call, req: messages.DdiHkdfDeriveReq) -> messages.DdiHkdfDeriveResp:
    key_id, masked, bulk_key_id = _derive(call, req, kdf.hkdf, req.salt, req.info)
    return messages.DdiHkdfDeriveResp(key_id=key_id, masked_key=masked, bulk_key_id=bulk_key_id)


def kbkdf_derive(call: Call, req: messages.DdiKbkdfCounterHmacDeriveReq) -> messages.DdiKbkdfCounterHmacDeriveResp:
    key_id, masked, bulk_key_id = _derive(call, req, kdf.kbkdf, req.label, req.context)
    return messages.DdiKbkdfCounterHmacDeriveResp(key_id=key_id, masked_key=masked, bulk_key_id=bulk_key_id)


def hmac_op(call: Call, req: messages.DdiHmacReq) -> messages.DdiHmacResp:
    entry = call.vault.keys.use(req.key_id, call.app_id, call.active_session().sess_id)
    require_family(entry, Family.HMAC)
    entry.require(Flag.SIGN)
    mac = hmac.HMAC(entry.material, HMAC_HASHES[entry.kind]())
    mac.update(req.msg)
    return messages.DdiHmacResp(tag=mac.finalize())


HANDLERS: dict[str, Handler] = {
    "HkdfDerive": hkdf_derive,
    "KbkdfCounterHmacDerive": kbkdf_derive,
    "Hmac": hmac_op,
}
