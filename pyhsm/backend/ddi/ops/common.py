"""What every key-creating or key-using op shares: properties, tags, creation with masking, public keys."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, TypeVar

from pyhsm.backend.ddi.call import Call
from pyhsm.backend.ddi.keyformat import KeyFormatError, material_to_private, spki
from pyhsm.backend.ddi.keys import KeyEntry
from pyhsm.backend.ddi.masking import Metadata, mask
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import ECC_BY_NAME, KINDS, RSA_PUBLIC, USAGE_FLAGS, Family, Flag, KeyType, Usage

# Bits of DdiTargetKeyMetadata (docs/ddi.md, "Keys: properties, tags, ids and tables"): bit i is blob[i // 8] >> (i % 8) & 1.
_SESSION_BIT, _MODIFIABLE_BIT = 0, 1
_USAGE_BITS: dict[frozenset[int], Usage] = {
    frozenset({2, 3}): Usage.ENCRYPT_DECRYPT, frozenset({4, 5}): Usage.SIGN_VERIFY,
    frozenset({8}): Usage.UNWRAP, frozenset({6}): Usage.DERIVE,
}


E = TypeVar("E", bound=enum.IntEnum)


class TagRule(enum.Enum):
    """Generate paths treat tag 0 as "no tag"; import and derive paths reject it (docs/ddi.md, "Keys: properties, tags, ids and tables")."""

    ZERO_IS_NONE = 1
    ZERO_REJECTED = 2


@dataclass(frozen=True)
class Properties:
    flags: Flag
    session_only: bool
    label: bytes


def properties(props: messages.DdiTargetKeyProperties, kind: KeyType) -> Properties:
    """Validate the requested usage for ``kind``; InvalidPermissions unless exactly one allowed class."""
    value = int.from_bytes(props.key_metadata.blob, "little")
    bits = frozenset(i for i in range(128) if value >> i & 1) - {_SESSION_BIT, _MODIFIABLE_BIT}
    usage = _USAGE_BITS.get(bits)
    if usage is None or usage not in KINDS[kind].usages:
        raise DdiFailure(DdiStatus.InvalidPermissions, f"usage bits {sorted(bits)} not allowed for {kind.name}")
    return Properties(USAGE_FLAGS[usage], bool(value & 1), bytes(props.key_label))


def tag_of(requested: int | None, props: Properties, rule: TagRule) -> int | None:
    if requested == 0 and rule is TagRule.ZERO_IS_NONE:
        requested = None
    if requested is None:
        return None
    if requested == 0:
        raise DdiFailure(DdiStatus.InvalidArg, "key tag 0 is not allowed")
    if props.session_only:
        raise DdiFailure(DdiStatus.InvalidArg, "session-only keys cannot be tagged")
    return requested


def masking_key_for(call: Call, session_only: bool) -> bytes:
    if session_only:
        return call.active_session().masking_key
    return call.provisioned().masking_key


def mask_entry(call: Call, entry: KeyEntry) -> bytes:
    owner = entry.session if entry.session is not None else (entry.tag or 0)
    metadata = Metadata(int(entry.kind), int(entry.flags), owner, entry.app_id, len(entry.material),
                        key_tag=entry.tag, label=entry.label)
    return mask(masking_key_for(call, entry.session is not None), entry.material, metadata)


def create(call: Call, entry: KeyEntry) -> tuple[int, bytes]:
    """Insert a new key and return (key id, masked blob). App keys are persisted before the answer."""
    masked = mask_entry(call, entry)
    key_id = call.vault.keys.insert(entry)
    if entry.session is None:
        call.dirty = True
    return key_id, masked


def new_entry(call: Call, kind: KeyType, material: bytes, props: Properties, tag: int | None, *,
              local: bool, private: Any = None) -> KeyEntry:
    flags = props.flags | (Flag.LOCAL if local else Flag(0)) | (Flag.SESSION if props.session_only else Flag(0))
    session = call.active_session().sess_id if props.session_only else None
    entry = KeyEntry(kind, material, flags, call.app_id, tag=tag, label=props.label, session=session)
    if private is not None:
        entry.cache["private"] = private
    return entry


def private_key(entry: KeyEntry) -> Any:
    """The parsed private key of an RSA or ECC entry, cached."""
    try:
        return entry.loaded("private", lambda: material_to_private(entry.kind, entry.material))
    except KeyFormatError:
        raise DdiFailure(DdiStatus.KeyDecodeFailed, "stored key does not decode") from None


def public_key_of(entry: KeyEntry) -> messages.DdiDerPublicKey | None:
    """DdiDerPublicKey for RSA/ECC private keys, None otherwise."""
    if KINDS[entry.kind].family not in (Family.RSA, Family.ECC):
        return None
    return asymmetric_public_key(entry)


def asymmetric_public_key(entry: KeyEntry) -> messages.DdiDerPublicKey:
    """DdiDerPublicKey of an RSA or ECC private key."""
    key = private_key(entry)
    if KINDS[entry.kind].family is Family.ECC:
        public_kind = ECC_BY_NAME[key.curve.name][1]
    else:
        public_kind = RSA_PUBLIC[key.key_size]
    return messages.DdiDerPublicKey(der=spki(key), key_kind=int(public_kind))


def bulk_id(entry: KeyEntry, key_id: int) -> int | None:
    return key_id if KINDS[entry.kind].family is Family.BULK else None


def require_family(entry: KeyEntry, *families: Family) -> None:
    if KINDS[entry.kind].family not in families:
        raise DdiFailure(DdiStatus.InvalidKeyType, f"{entry.kind.name} cannot be used here")


def enum_value(enum_cls: type[E], value: int, what: str) -> E:
    try:
        return enum_cls(value)
    except ValueError:
        raise DdiFailure(DdiStatus.InvalidArg, f"unknown {what} {value}") from None
