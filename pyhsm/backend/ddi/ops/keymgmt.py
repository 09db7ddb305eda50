"""Key lookup, deletion, re-import of masked blobs and the unwrapping key (docs/ddi.md, "Operations")."""

from __future__ import annotations

from pyhsm.backend.ddi import masking
from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.keyformat import KeyFormatError, expected_length, material_to_private
from pyhsm.backend.ddi.keys import INTERNAL_APP, KeyEntry
from pyhsm.backend.ddi.ops.common import asymmetric_public_key, bulk_id, public_key_of
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import KINDS, VAR_HMAC_LENGTHS, Family, Flag, KeyType


def open_key(call: Call, req: messages.DdiOpenKeyReq) -> messages.DdiOpenKeyResp:
    key_id = call.vault.keys.find_tag(call.app_id, req.key_tag) if req.key_tag else None
    if key_id is None:  # tag 0 names no key: KeyNotFound like any unknown tag (the vendor's search)
        raise DdiFailure(DdiStatus.KeyNotFound, f"no key with tag {req.key_tag}")
    entry = call.vault.keys.get(key_id)
    return messages.DdiOpenKeyResp(key_id=key_id, key_kind=int(entry.kind), pub_key=public_key_of(entry),
                                   bulk_key_id=bulk_id(entry, key_id))


def delete_key(call: Call, req: messages.DdiDeleteKeyReq) -> messages.DdiDeleteKeyResp:
    entry = call.vault.keys.delete(req.key_id, call.app_id, call.active_session().sess_id)
    call.dirty = entry.session is None
    return messages.DdiDeleteKeyResp()


def _restored_entry(call: Call, blob: bytes) -> KeyEntry:
    session = call.active_session()
    try:
        peek = masking.peek_metadata(blob)
        key = session.masking_key if peek.session_key else call.provisioned().masking_key
        meta, material = masking.unmask(key, blob)
        kind = KeyType(meta.key_type)
        if kind not in KINDS or KINDS[kind].family is Family.MASKING:
            raise masking.MaskError(f"kind {kind.name} cannot be unmasked")
        length = expected_length(kind)
        if length is not None and len(material) != length:
            raise masking.MaskError(f"{kind.name} material must be {length} bytes")
        low, high = VAR_HMAC_LENGTHS.get(kind, (0, len(material)))
        if not low <= len(material) <= high:
            raise masking.MaskError(f"{kind.name} material must be {low}-{high} bytes")
        private = material_to_private(kind, material) if KINDS[kind].family in (Family.RSA, Family.ECC) else None
    except (masking.MaskError, KeyFormatError, ValueError) as exc:
        raise DdiFailure(DdiStatus.MaskedKeyDecodeFailed, str(exc)) from None
    if meta.app_id == INTERNAL_APP:
        raise DdiFailure(DdiStatus.UnmaskUnwrappingKeyNotAllowed, "internal keys cannot be unmasked")
    if meta.app_id != call.app_id:
        raise DdiFailure(DdiStatus.AppNotFound, "blob belongs to another app")
    if meta.session_key and meta.owner != session.sess_id:
        raise DdiFailure(DdiStatus.SessionNotFound, "session key of another session")
    entry = KeyEntry(kind, material, Flag(meta.flags), meta.app_id, tag=meta.key_tag, label=meta.label,
                     session=session.sess_id if meta.session_key else None)
    if private is not None:
        entry.cache["private"] = private
    return entry


def unmask_key(call: Call, req: messages.DdiUnmaskKeyReq) -> messages.DdiUnmaskKeyResp:
    entry = _restored_entry(call, req.masked_key)
    key_id = call.vault.keys.insert(entry)
    call.dirty = entry.session is None
    return messages.DdiUnmaskKeyResp(key_id=key_id, pub_key=public_key_of(entry),
                                     bulk_key_id=bulk_id(entry, key_id), kind=int(entry.kind),
                                     masked_key=req.masked_key)


def get_unwrapping_key(call: Call, req: messages.DdiGetUnwrappingKeyReq) -> messages.DdiGetUnwrappingKeyResp:
    prov = call.provisioned()
    entry = call.vault.keys.get(prov.unwrapping_key_id)
    return messages.DdiGetUnwrappingKeyResp(key_id=prov.unwrapping_key_id, pub_key=asymmetric_public_key(entry),
                                            masked_key=prov.masked_unwrapping_key)


HANDLERS: dict[str, Handler] = {
    "OpenKey": open_key,
    "DeleteKey": delete_key,
    "UnmaskKey": unmask_key,
    "GetUnwrappingKey": get_unwrapping_key,
}
