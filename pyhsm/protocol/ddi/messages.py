# GENERATED FILE, do not edit: written by pyhsm/protocol/ddi/typegen.py from the MBOR schemas in
# pyhsm/protocol/ddi/schemas.py and schemas_vendor.py. Regenerate after changing a schema with
#     build/venv/bin/python -m pyhsm.protocol.ddi.typegen
"""Typed DDI messages: one immutable dataclass per MBOR struct (docs/ddi.md, docs/vendor-ops.md).

``mbor.Struct`` uses the class of its name as ``cls``, so decoded messages are instances of these
classes and ``SCHEMA`` is the struct that encodes and decodes them.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pyhsm.protocol.ddi.mbor import Struct

class Message:
    """Base of every message: immutable, equal by type and field values, hashable, with a readable repr.

    The classes below are dataclasses (``dataclasses.fields`` and ``replace`` work) whose methods are
    written out here rather than made by ``@dataclass`` at import time, which would cost about 0.1 s
    per process on the host and seconds in a TCG guest. Their ``__init__`` fills the instance
    dictionary directly (about twice as fast as ``object.__setattr__`` per field).
    """

    __slots__ = ()
    FIELDS: ClassVar[tuple[str, ...]] = ()     # the fields, in attribute order

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in zip(self.FIELDS, self._values()))
        return f"{type(self).__name__}({fields})"


@dataclass(init=False, repr=False, eq=False)
class DdiApiRev(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('major', 'minor')

    major: int
    minor: int

    def __init__(self, major: int, minor: int) -> None:
        d = self.__dict__
        d['major'] = major
        d['minor'] = minor


@dataclass(init=False, repr=False, eq=False)
class DdiReqHdr(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('op', 'rev', 'sess_id')

    op: int
    rev: DdiApiRev | None = None
    sess_id: int | None = None

    def __init__(self, op: int, rev: DdiApiRev | None = None, sess_id: int | None = None) -> None:
        d = self.__dict__
        d['op'] = op
        d['rev'] = rev
        d['sess_id'] = sess_id


@dataclass(init=False, repr=False, eq=False)
class DdiRespHdr(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('op', 'status', 'fips_approved', 'rev', 'sess_id')

    op: int
    status: int
    fips_approved: bool
    rev: DdiApiRev | None = None
    sess_id: int | None = None

    def __init__(self, op: int, status: int, fips_approved: bool, rev: DdiApiRev | None = None, sess_id: int | None = None) -> None:
        d = self.__dict__
        d['op'] = op
        d['status'] = status
        d['fips_approved'] = fips_approved
        d['rev'] = rev
        d['sess_id'] = sess_id


@dataclass(init=False, repr=False, eq=False)
class DdiDerPublicKey(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('der', 'key_kind')

    der: bytes
    key_kind: int

    def __init__(self, der: bytes, key_kind: int) -> None:
        d = self.__dict__
        d['der'] = der
        d['key_kind'] = key_kind


@dataclass(init=False, repr=False, eq=False)
class DdiTargetKeyMetadata(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('blob',)

    blob: bytes

    def __init__(self, blob: bytes) -> None:
        d = self.__dict__
        d['blob'] = blob


@dataclass(init=False, repr=False, eq=False)
class DdiTargetKeyProperties(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_metadata', 'key_label')

    key_metadata: DdiTargetKeyMetadata
    key_label: bytes

    def __init__(self, key_metadata: DdiTargetKeyMetadata, key_label: bytes) -> None:
        d = self.__dict__
        d['key_metadata'] = key_metadata
        d['key_label'] = key_label


@dataclass(init=False, repr=False, eq=False)
class DdiEncryptedEstablishCredential(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('encrypted_id', 'encrypted_pin', 'iv', 'nonce', 'tag')

    encrypted_id: bytes
    encrypted_pin: bytes
    iv: bytes
    nonce: bytes
    tag: bytes

    def __init__(self, encrypted_id: bytes, encrypted_pin: bytes, iv: bytes, nonce: bytes, tag: bytes) -> None:
        d = self.__dict__
        d['encrypted_id'] = encrypted_id
        d['encrypted_pin'] = encrypted_pin
        d['iv'] = iv
        d['nonce'] = nonce
        d['tag'] = tag


@dataclass(init=False, repr=False, eq=False)
class DdiEncryptedSessionCredential(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('encrypted_id', 'encrypted_pin', 'encrypted_seed', 'iv', 'nonce', 'tag')

    encrypted_id: bytes
    encrypted_pin: bytes
    encrypted_seed: bytes
    iv: bytes
    nonce: bytes
    tag: bytes

    def __init__(self, encrypted_id: bytes, encrypted_pin: bytes, encrypted_seed: bytes, iv: bytes, nonce: bytes, tag: bytes) -> None:
        d = self.__dict__
        d['encrypted_id'] = encrypted_id
        d['encrypted_pin'] = encrypted_pin
        d['encrypted_seed'] = encrypted_seed
        d['iv'] = iv
        d['nonce'] = nonce
        d['tag'] = tag


@dataclass(init=False, repr=False, eq=False)
class DdiEncryptedPin(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('encrypted_pin', 'iv', 'nonce', 'tag')

    encrypted_pin: bytes
    iv: bytes
    nonce: bytes
    tag: bytes

    def __init__(self, encrypted_pin: bytes, iv: bytes, nonce: bytes, tag: bytes) -> None:
        d = self.__dict__
        d['encrypted_pin'] = encrypted_pin
        d['iv'] = iv
        d['nonce'] = nonce
        d['tag'] = tag


@dataclass(init=False, repr=False, eq=False)
class DdiMaskedKeyAttributes(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('blob',)

    blob: bytes

    def __init__(self, blob: bytes) -> None:
        d = self.__dict__
        d['blob'] = blob


@dataclass(init=False, repr=False, eq=False)
class DdiMaskedKeyMetadata(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_type', 'key_attributes', 'key_label', 'key_length', 'svn', 'bks2_index', 'key_tag')

    key_type: int
    key_attributes: DdiMaskedKeyAttributes
    key_label: bytes
    key_length: int
    svn: int | None = None
    bks2_index: int | None = None
    key_tag: int | None = None

    def __init__(self, key_type: int, key_attributes: DdiMaskedKeyAttributes, key_label: bytes, key_length: int, svn: int | None = None, bks2_index: int | None = None, key_tag: int | None = None) -> None:
        d = self.__dict__
        d['key_type'] = key_type
        d['key_attributes'] = key_attributes
        d['key_label'] = key_label
        d['key_length'] = key_length
        d['svn'] = svn
        d['bks2_index'] = bks2_index
        d['key_tag'] = key_tag


@dataclass(init=False, repr=False, eq=False)
class DdiEmpty(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class CvmEvidence(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('vm_id', 'attest', 'signature', 'pcr_values')

    vm_id: bytes
    attest: bytes
    signature: bytes
    pcr_values: bytes

    def __init__(self, vm_id: bytes, attest: bytes, signature: bytes, pcr_values: bytes) -> None:
        d = self.__dict__
        d['vm_id'] = vm_id
        d['attest'] = attest
        d['signature'] = signature
        d['pcr_values'] = pcr_values


@dataclass(init=False, repr=False, eq=False)
class CvmRecipient(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('kem_pub', 'ecdh_pub')

    kem_pub: bytes
    ecdh_pub: bytes

    def __init__(self, kem_pub: bytes, ecdh_pub: bytes) -> None:
        d = self.__dict__
        d['kem_pub'] = kem_pub
        d['ecdh_pub'] = ecdh_pub


@dataclass(init=False, repr=False, eq=False)
class CvmWrapped(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('kem_ct', 'ecdh_pub', 'ciphertext')

    kem_ct: bytes
    ecdh_pub: bytes
    ciphertext: bytes

    def __init__(self, kem_ct: bytes, ecdh_pub: bytes, ciphertext: bytes) -> None:
        d = self.__dict__
        d['kem_ct'] = kem_ct
        d['ecdh_pub'] = ecdh_pub
        d['ciphertext'] = ciphertext


@dataclass(init=False, repr=False, eq=False)
class CvmRegisterVmBody(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('seq', 'vm_id', 'ek_public', 'ak_public')

    seq: int
    vm_id: bytes
    ek_public: bytes
    ak_public: bytes

    def __init__(self, seq: int, vm_id: bytes, ek_public: bytes, ak_public: bytes) -> None:
        d = self.__dict__
        d['seq'] = seq
        d['vm_id'] = vm_id
        d['ek_public'] = ek_public
        d['ak_public'] = ak_public


@dataclass(init=False, repr=False, eq=False)
class CvmSetPolicyBody(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('seq', 'workload', 'vm_id', 'pcr_bank', 'pcr_mask', 'pcr_values', 'key_tag')

    seq: int
    workload: bytes
    vm_id: bytes
    pcr_bank: int
    pcr_mask: int
    pcr_values: bytes
    key_tag: int | None = None

    def __init__(self, seq: int, workload: bytes, vm_id: bytes, pcr_bank: int, pcr_mask: int, pcr_values: bytes, key_tag: int | None = None) -> None:
        d = self.__dict__
        d['seq'] = seq
        d['workload'] = workload
        d['vm_id'] = vm_id
        d['pcr_bank'] = pcr_bank
        d['pcr_mask'] = pcr_mask
        d['pcr_values'] = pcr_values
        d['key_tag'] = key_tag


@dataclass(init=False, repr=False, eq=False)
class DdiGetApiRevReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiGetApiRevResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('min', 'max')

    min: DdiApiRev
    max: DdiApiRev

    def __init__(self, min: DdiApiRev, max: DdiApiRev) -> None:
        d = self.__dict__
        d['min'] = min
        d['max'] = max


@dataclass(init=False, repr=False, eq=False)
class DdiGetDeviceInfoReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiGetDeviceInfoResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('kind', 'tables', 'fips_approved')

    kind: int
    tables: int
    fips_approved: bool

    def __init__(self, kind: int, tables: int, fips_approved: bool) -> None:
        d = self.__dict__
        d['kind'] = kind
        d['tables'] = tables
        d['fips_approved'] = fips_approved


@dataclass(init=False, repr=False, eq=False)
class DdiDeleteKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id',)

    key_id: int

    def __init__(self, key_id: int) -> None:
        d = self.__dict__
        d['key_id'] = key_id


@dataclass(init=False, repr=False, eq=False)
class DdiDeleteKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiOpenKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_tag',)

    key_tag: int

    def __init__(self, key_tag: int) -> None:
        d = self.__dict__
        d['key_tag'] = key_tag


@dataclass(init=False, repr=False, eq=False)
class DdiOpenKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'key_kind', 'pub_key', 'bulk_key_id')

    key_id: int
    key_kind: int
    pub_key: DdiDerPublicKey | None = None
    bulk_key_id: int | None = None

    def __init__(self, key_id: int, key_kind: int, pub_key: DdiDerPublicKey | None = None, bulk_key_id: int | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['key_kind'] = key_kind
        d['pub_key'] = pub_key
        d['bulk_key_id'] = bulk_key_id


@dataclass(init=False, repr=False, eq=False)
class DdiAttestKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'report_data')

    key_id: int
    report_data: bytes

    def __init__(self, key_id: int, report_data: bytes) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['report_data'] = report_data


@dataclass(init=False, repr=False, eq=False)
class DdiAttestKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('report',)

    report: bytes

    def __init__(self, report: bytes) -> None:
        d = self.__dict__
        d['report'] = report


@dataclass(init=False, repr=False, eq=False)
class DdiRsaModExpReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'y', 'op_type')

    key_id: int
    y: bytes
    op_type: int

    def __init__(self, key_id: int, y: bytes, op_type: int) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['y'] = y
        d['op_type'] = op_type


@dataclass(init=False, repr=False, eq=False)
class DdiRsaModExpResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('x',)

    x: bytes

    def __init__(self, x: bytes) -> None:
        d = self.__dict__
        d['x'] = x


@dataclass(init=False, repr=False, eq=False)
class DdiRsaUnwrapReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'wrapped_blob', 'wrapped_blob_key_class', 'wrapped_blob_padding', 'wrapped_blob_hash_algorithm', 'key_properties', 'key_tag')

    key_id: int
    wrapped_blob: bytes
    wrapped_blob_key_class: int
    wrapped_blob_padding: int
    wrapped_blob_hash_algorithm: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None

    def __init__(self, key_id: int, wrapped_blob: bytes, wrapped_blob_key_class: int, wrapped_blob_padding: int, wrapped_blob_hash_algorithm: int, key_properties: DdiTargetKeyProperties, key_tag: int | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['wrapped_blob'] = wrapped_blob
        d['wrapped_blob_key_class'] = wrapped_blob_key_class
        d['wrapped_blob_padding'] = wrapped_blob_padding
        d['wrapped_blob_hash_algorithm'] = wrapped_blob_hash_algorithm
        d['key_properties'] = key_properties
        d['key_tag'] = key_tag


@dataclass(init=False, repr=False, eq=False)
class DdiRsaUnwrapResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'kind', 'masked_key', 'pub_key', 'bulk_key_id')

    key_id: int
    kind: int
    masked_key: bytes
    pub_key: DdiDerPublicKey | None = None
    bulk_key_id: int | None = None

    def __init__(self, key_id: int, kind: int, masked_key: bytes, pub_key: DdiDerPublicKey | None = None, bulk_key_id: int | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['kind'] = kind
        d['masked_key'] = masked_key
        d['pub_key'] = pub_key
        d['bulk_key_id'] = bulk_key_id


@dataclass(init=False, repr=False, eq=False)
class DdiGetUnwrappingKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiGetUnwrappingKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'pub_key', 'masked_key')

    key_id: int
    pub_key: DdiDerPublicKey
    masked_key: bytes

    def __init__(self, key_id: int, pub_key: DdiDerPublicKey, masked_key: bytes) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['pub_key'] = pub_key
        d['masked_key'] = masked_key


@dataclass(init=False, repr=False, eq=False)
class DdiEccGenerateKeyPairReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('curve', 'key_properties', 'key_tag')

    curve: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None

    def __init__(self, curve: int, key_properties: DdiTargetKeyProperties, key_tag: int | None = None) -> None:
        d = self.__dict__
        d['curve'] = curve
        d['key_properties'] = key_properties
        d['key_tag'] = key_tag


@dataclass(init=False, repr=False, eq=False)
class DdiEccGenerateKeyPairResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('private_key_id', 'pub_key', 'masked_key')

    private_key_id: int
    pub_key: DdiDerPublicKey
    masked_key: bytes

    def __init__(self, private_key_id: int, pub_key: DdiDerPublicKey, masked_key: bytes) -> None:
        d = self.__dict__
        d['private_key_id'] = private_key_id
        d['pub_key'] = pub_key
        d['masked_key'] = masked_key


@dataclass(init=False, repr=False, eq=False)
class DdiEccSignReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'digest', 'digest_algo')

    key_id: int
    digest: bytes
    digest_algo: int

    def __init__(self, key_id: int, digest: bytes, digest_algo: int) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['digest'] = digest
        d['digest_algo'] = digest_algo


@dataclass(init=False, repr=False, eq=False)
class DdiEccSignResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('signature',)

    signature: bytes

    def __init__(self, signature: bytes) -> None:
        d = self.__dict__
        d['signature'] = signature


@dataclass(init=False, repr=False, eq=False)
class DdiAesGenerateKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_size', 'key_properties', 'key_tag')

    key_size: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None

    def __init__(self, key_size: int, key_properties: DdiTargetKeyProperties, key_tag: int | None = None) -> None:
        d = self.__dict__
        d['key_size'] = key_size
        d['key_properties'] = key_properties
        d['key_tag'] = key_tag


@dataclass(init=False, repr=False, eq=False)
class DdiAesGenerateKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'masked_key', 'bulk_key_id')

    key_id: int
    masked_key: bytes
    bulk_key_id: int | None = None

    def __init__(self, key_id: int, masked_key: bytes, bulk_key_id: int | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['masked_key'] = masked_key
        d['bulk_key_id'] = bulk_key_id


@dataclass(init=False, repr=False, eq=False)
class DdiAesEncryptDecryptReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'op', 'msg', 'iv')

    key_id: int
    op: int
    msg: bytes
    iv: bytes

    def __init__(self, key_id: int, op: int, msg: bytes, iv: bytes) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['op'] = op
        d['msg'] = msg
        d['iv'] = iv


@dataclass(init=False, repr=False, eq=False)
class DdiAesEncryptDecryptResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('msg', 'iv')

    msg: bytes
    iv: bytes

    def __init__(self, msg: bytes, iv: bytes) -> None:
        d = self.__dict__
        d['msg'] = msg
        d['iv'] = iv


@dataclass(init=False, repr=False, eq=False)
class DdiEcdhKeyExchangeReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('priv_key_id', 'pub_key_der', 'key_type', 'key_properties', 'key_tag')

    priv_key_id: int
    pub_key_der: bytes
    key_type: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None

    def __init__(self, priv_key_id: int, pub_key_der: bytes, key_type: int, key_properties: DdiTargetKeyProperties, key_tag: int | None = None) -> None:
        d = self.__dict__
        d['priv_key_id'] = priv_key_id
        d['pub_key_der'] = pub_key_der
        d['key_type'] = key_type
        d['key_properties'] = key_properties
        d['key_tag'] = key_tag


@dataclass(init=False, repr=False, eq=False)
class DdiEcdhKeyExchangeResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'masked_key')

    key_id: int
    masked_key: bytes

    def __init__(self, key_id: int, masked_key: bytes) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['masked_key'] = masked_key


@dataclass(init=False, repr=False, eq=False)
class DdiHkdfDeriveReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'hash_algorithm', 'key_type', 'key_properties', 'salt', 'info', 'key_tag', 'key_length')

    key_id: int
    hash_algorithm: int
    key_type: int
    key_properties: DdiTargetKeyProperties
    salt: bytes | None = None
    info: bytes | None = None
    key_tag: int | None = None
    key_length: int | None = None

    def __init__(self, key_id: int, hash_algorithm: int, key_type: int, key_properties: DdiTargetKeyProperties, salt: bytes | None = None, info: bytes | None = None, key_tag: int | None = None, key_length: int | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['hash_algorithm'] = hash_algorithm
        d['key_type'] = key_type
        d['key_properties'] = key_properties
        d['salt'] = salt
        d['info'] = info
        d['key_tag'] = key_tag
        d['key_length'] = key_length


@dataclass(init=False, repr=False, eq=False)
class DdiHkdfDeriveResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'masked_key', 'bulk_key_id')

    key_id: int
    masked_key: bytes
    bulk_key_id: int | None = None

    def __init__(self, key_id: int, masked_key: bytes, bulk_key_id: int | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['masked_key'] = masked_key
        d['bulk_key_id'] = bulk_key_id


@dataclass(init=False, repr=False, eq=False)
class DdiKbkdfCounterHmacDeriveReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'hash_algorithm', 'key_type', 'key_properties', 'label', 'context', 'key_tag', 'key_length')

    key_id: int
    hash_algorithm: int
    key_type: int
    key_properties: DdiTargetKeyProperties
    label: bytes | None = None
    context: bytes | None = None
    key_tag: int | None = None
    key_length: int | None = None

    def __init__(self, key_id: int, hash_algorithm: int, key_type: int, key_properties: DdiTargetKeyProperties, label: bytes | None = None, context: bytes | None = None, key_tag: int | None = None, key_length: int | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['hash_algorithm'] = hash_algorithm
        d['key_type'] = key_type
        d['key_properties'] = key_properties
        d['label'] = label
        d['context'] = context
        d['key_tag'] = key_tag
        d['key_length'] = key_length


@dataclass(init=False, repr=False, eq=False)
class DdiKbkdfCounterHmacDeriveResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'masked_key', 'bulk_key_id')

    key_id: int
    masked_key: bytes
    bulk_key_id: int | None = None

    def __init__(self, key_id: int, masked_key: bytes, bulk_key_id: int | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['masked_key'] = masked_key
        d['bulk_key_id'] = bulk_key_id


@dataclass(init=False, repr=False, eq=False)
class DdiHmacReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'msg')

    key_id: int
    msg: bytes

    def __init__(self, key_id: int, msg: bytes) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['msg'] = msg


@dataclass(init=False, repr=False, eq=False)
class DdiHmacResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('tag',)

    tag: bytes

    def __init__(self, tag: bytes) -> None:
        d = self.__dict__
        d['tag'] = tag


@dataclass(init=False, repr=False, eq=False)
class DdiGetEstablishCredEncryptionKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiGetEstablishCredEncryptionKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('pub_key', 'nonce', 'pub_key_signature')

    pub_key: DdiDerPublicKey
    nonce: bytes
    pub_key_signature: bytes

    def __init__(self, pub_key: DdiDerPublicKey, nonce: bytes, pub_key_signature: bytes) -> None:
        d = self.__dict__
        d['pub_key'] = pub_key
        d['nonce'] = nonce
        d['pub_key_signature'] = pub_key_signature


@dataclass(init=False, repr=False, eq=False)
class DdiEstablishCredentialReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('encrypted_credential', 'pub_key', 'masked_bk3', 'bmk', 'masked_unwrapping_key', 'pota_sig', 'pota_pub_key')

    encrypted_credential: DdiEncryptedEstablishCredential
    pub_key: DdiDerPublicKey
    masked_bk3: bytes
    bmk: bytes
    masked_unwrapping_key: bytes
    pota_sig: bytes
    pota_pub_key: DdiDerPublicKey

    def __init__(self, encrypted_credential: DdiEncryptedEstablishCredential, pub_key: DdiDerPublicKey, masked_bk3: bytes, bmk: bytes, masked_unwrapping_key: bytes, pota_sig: bytes, pota_pub_key: DdiDerPublicKey) -> None:
        d = self.__dict__
        d['encrypted_credential'] = encrypted_credential
        d['pub_key'] = pub_key
        d['masked_bk3'] = masked_bk3
        d['bmk'] = bmk
        d['masked_unwrapping_key'] = masked_unwrapping_key
        d['pota_sig'] = pota_sig
        d['pota_pub_key'] = pota_pub_key


@dataclass(init=False, repr=False, eq=False)
class DdiEstablishCredentialResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('bmk',)

    bmk: bytes

    def __init__(self, bmk: bytes) -> None:
        d = self.__dict__
        d['bmk'] = bmk


@dataclass(init=False, repr=False, eq=False)
class DdiGetSessionEncryptionKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiGetSessionEncryptionKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('pub_key', 'nonce', 'pub_key_signature')

    pub_key: DdiDerPublicKey
    nonce: bytes
    pub_key_signature: bytes

    def __init__(self, pub_key: DdiDerPublicKey, nonce: bytes, pub_key_signature: bytes) -> None:
        d = self.__dict__
        d['pub_key'] = pub_key
        d['nonce'] = nonce
        d['pub_key_signature'] = pub_key_signature


@dataclass(init=False, repr=False, eq=False)
class DdiOpenSessionReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('encrypted_credential', 'pub_key')

    encrypted_credential: DdiEncryptedSessionCredential
    pub_key: DdiDerPublicKey

    def __init__(self, encrypted_credential: DdiEncryptedSessionCredential, pub_key: DdiDerPublicKey) -> None:
        d = self.__dict__
        d['encrypted_credential'] = encrypted_credential
        d['pub_key'] = pub_key


@dataclass(init=False, repr=False, eq=False)
class DdiOpenSessionResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('sess_id', 'short_app_id', 'bmk_session')

    sess_id: int
    short_app_id: int
    bmk_session: bytes

    def __init__(self, sess_id: int, short_app_id: int, bmk_session: bytes) -> None:
        d = self.__dict__
        d['sess_id'] = sess_id
        d['short_app_id'] = short_app_id
        d['bmk_session'] = bmk_session


@dataclass(init=False, repr=False, eq=False)
class DdiCloseSessionReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiCloseSessionResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiChangePinReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('new_pin', 'pub_key')

    new_pin: DdiEncryptedPin
    pub_key: DdiDerPublicKey

    def __init__(self, new_pin: DdiEncryptedPin, pub_key: DdiDerPublicKey) -> None:
        d = self.__dict__
        d['new_pin'] = new_pin
        d['pub_key'] = pub_key


@dataclass(init=False, repr=False, eq=False)
class DdiChangePinResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiUnmaskKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('masked_key',)

    masked_key: bytes

    def __init__(self, masked_key: bytes) -> None:
        d = self.__dict__
        d['masked_key'] = masked_key


@dataclass(init=False, repr=False, eq=False)
class DdiUnmaskKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'kind', 'masked_key', 'pub_key', 'bulk_key_id')

    key_id: int
    kind: int
    masked_key: bytes
    pub_key: DdiDerPublicKey | None = None
    bulk_key_id: int | None = None

    def __init__(self, key_id: int, kind: int, masked_key: bytes, pub_key: DdiDerPublicKey | None = None, bulk_key_id: int | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['kind'] = kind
        d['masked_key'] = masked_key
        d['pub_key'] = pub_key
        d['bulk_key_id'] = bulk_key_id


@dataclass(init=False, repr=False, eq=False)
class DdiGetCertChainInfoReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('slot_id',)

    slot_id: int

    def __init__(self, slot_id: int) -> None:
        d = self.__dict__
        d['slot_id'] = slot_id


@dataclass(init=False, repr=False, eq=False)
class DdiGetCertChainInfoResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('num_certs', 'thumbprint')

    num_certs: int
    thumbprint: bytes

    def __init__(self, num_certs: int, thumbprint: bytes) -> None:
        d = self.__dict__
        d['num_certs'] = num_certs
        d['thumbprint'] = thumbprint


@dataclass(init=False, repr=False, eq=False)
class DdiGetCertificateReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('slot_id', 'cert_id')

    slot_id: int
    cert_id: int

    def __init__(self, slot_id: int, cert_id: int) -> None:
        d = self.__dict__
        d['slot_id'] = slot_id
        d['cert_id'] = cert_id


@dataclass(init=False, repr=False, eq=False)
class DdiGetCertificateResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('certificate',)

    certificate: bytes

    def __init__(self, certificate: bytes) -> None:
        d = self.__dict__
        d['certificate'] = certificate


@dataclass(init=False, repr=False, eq=False)
class DdiReopenSessionReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('encrypted_credential', 'pub_key', 'bmk_session')

    encrypted_credential: DdiEncryptedSessionCredential
    pub_key: DdiDerPublicKey
    bmk_session: bytes

    def __init__(self, encrypted_credential: DdiEncryptedSessionCredential, pub_key: DdiDerPublicKey, bmk_session: bytes) -> None:
        d = self.__dict__
        d['encrypted_credential'] = encrypted_credential
        d['pub_key'] = pub_key
        d['bmk_session'] = bmk_session


@dataclass(init=False, repr=False, eq=False)
class DdiReopenSessionResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('sess_id', 'short_app_id', 'bmk_session')

    sess_id: int
    short_app_id: int
    bmk_session: bytes

    def __init__(self, sess_id: int, short_app_id: int, bmk_session: bytes) -> None:
        d = self.__dict__
        d['sess_id'] = sess_id
        d['short_app_id'] = short_app_id
        d['bmk_session'] = bmk_session


@dataclass(init=False, repr=False, eq=False)
class DdiInitBk3Req(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('bk3',)

    bk3: bytes

    def __init__(self, bk3: bytes) -> None:
        d = self.__dict__
        d['bk3'] = bk3


@dataclass(init=False, repr=False, eq=False)
class DdiInitBk3Resp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('masked_bk3', 'vm_launch_guid')

    masked_bk3: bytes
    vm_launch_guid: bytes

    def __init__(self, masked_bk3: bytes, vm_launch_guid: bytes) -> None:
        d = self.__dict__
        d['masked_bk3'] = masked_bk3
        d['vm_launch_guid'] = vm_launch_guid


@dataclass(init=False, repr=False, eq=False)
class DdiGetSealedBk3Req(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiGetSealedBk3Resp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('sealed_bk3',)

    sealed_bk3: bytes

    def __init__(self, sealed_bk3: bytes) -> None:
        d = self.__dict__
        d['sealed_bk3'] = sealed_bk3


@dataclass(init=False, repr=False, eq=False)
class DdiSetSealedBk3Req(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('sealed_bk3',)

    sealed_bk3: bytes

    def __init__(self, sealed_bk3: bytes) -> None:
        d = self.__dict__
        d['sealed_bk3'] = sealed_bk3


@dataclass(init=False, repr=False, eq=False)
class DdiSetSealedBk3Resp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiMlDsaGenerateKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('params', 'key_properties', 'key_tag', 'seed')

    params: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None
    seed: bytes | None = None

    def __init__(self, params: int, key_properties: DdiTargetKeyProperties, key_tag: int | None = None, seed: bytes | None = None) -> None:
        d = self.__dict__
        d['params'] = params
        d['key_properties'] = key_properties
        d['key_tag'] = key_tag
        d['seed'] = seed


@dataclass(init=False, repr=False, eq=False)
class DdiMlDsaGenerateKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'pub_key', 'masked_key')

    key_id: int
    pub_key: bytes
    masked_key: bytes

    def __init__(self, key_id: int, pub_key: bytes, masked_key: bytes) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['pub_key'] = pub_key
        d['masked_key'] = masked_key


@dataclass(init=False, repr=False, eq=False)
class DdiMlDsaSignReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'message', 'context')

    key_id: int
    message: bytes
    context: bytes | None = None

    def __init__(self, key_id: int, message: bytes, context: bytes | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['message'] = message
        d['context'] = context


@dataclass(init=False, repr=False, eq=False)
class DdiMlDsaSignResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('signature',)

    signature: bytes

    def __init__(self, signature: bytes) -> None:
        d = self.__dict__
        d['signature'] = signature


@dataclass(init=False, repr=False, eq=False)
class DdiMlDsaGetPublicKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id',)

    key_id: int

    def __init__(self, key_id: int) -> None:
        d = self.__dict__
        d['key_id'] = key_id


@dataclass(init=False, repr=False, eq=False)
class DdiMlDsaGetPublicKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('params', 'pub_key')

    params: int
    pub_key: bytes

    def __init__(self, params: int, pub_key: bytes) -> None:
        d = self.__dict__
        d['params'] = params
        d['pub_key'] = pub_key


@dataclass(init=False, repr=False, eq=False)
class DdiMlKemGenerateKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('params', 'key_properties', 'key_tag', 'seed')

    params: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None
    seed: bytes | None = None

    def __init__(self, params: int, key_properties: DdiTargetKeyProperties, key_tag: int | None = None, seed: bytes | None = None) -> None:
        d = self.__dict__
        d['params'] = params
        d['key_properties'] = key_properties
        d['key_tag'] = key_tag
        d['seed'] = seed


@dataclass(init=False, repr=False, eq=False)
class DdiMlKemGenerateKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'pub_key', 'masked_key')

    key_id: int
    pub_key: bytes
    masked_key: bytes

    def __init__(self, key_id: int, pub_key: bytes, masked_key: bytes) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['pub_key'] = pub_key
        d['masked_key'] = masked_key


@dataclass(init=False, repr=False, eq=False)
class DdiMlKemDecapsulateReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'ciphertext', 'key_properties', 'key_tag')

    key_id: int
    ciphertext: bytes
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None

    def __init__(self, key_id: int, ciphertext: bytes, key_properties: DdiTargetKeyProperties, key_tag: int | None = None) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['ciphertext'] = ciphertext
        d['key_properties'] = key_properties
        d['key_tag'] = key_tag


@dataclass(init=False, repr=False, eq=False)
class DdiMlKemDecapsulateResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id', 'masked_key')

    key_id: int
    masked_key: bytes

    def __init__(self, key_id: int, masked_key: bytes) -> None:
        d = self.__dict__
        d['key_id'] = key_id
        d['masked_key'] = masked_key


@dataclass(init=False, repr=False, eq=False)
class DdiMlKemGetPublicKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('key_id',)

    key_id: int

    def __init__(self, key_id: int) -> None:
        d = self.__dict__
        d['key_id'] = key_id


@dataclass(init=False, repr=False, eq=False)
class DdiMlKemGetPublicKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('params', 'pub_key')

    params: int
    pub_key: bytes

    def __init__(self, params: int, pub_key: bytes) -> None:
        d = self.__dict__
        d['params'] = params
        d['pub_key'] = pub_key


@dataclass(init=False, repr=False, eq=False)
class DdiCvmGetNonceReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('vm_id',)

    vm_id: bytes

    def __init__(self, vm_id: bytes) -> None:
        d = self.__dict__
        d['vm_id'] = vm_id


@dataclass(init=False, repr=False, eq=False)
class DdiCvmGetNonceResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('nonce', 'lifetime_ms')

    nonce: bytes
    lifetime_ms: int

    def __init__(self, nonce: bytes, lifetime_ms: int) -> None:
        d = self.__dict__
        d['nonce'] = nonce
        d['lifetime_ms'] = lifetime_ms


@dataclass(init=False, repr=False, eq=False)
class DdiCvmVerifyEvidenceReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('evidence',)

    evidence: CvmEvidence

    def __init__(self, evidence: CvmEvidence) -> None:
        d = self.__dict__
        d['evidence'] = evidence


@dataclass(init=False, repr=False, eq=False)
class DdiCvmVerifyEvidenceResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('statement',)

    statement: bytes

    def __init__(self, statement: bytes) -> None:
        d = self.__dict__
        d['statement'] = statement


@dataclass(init=False, repr=False, eq=False)
class DdiCvmReleaseKeyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('evidence', 'workload', 'recipient')

    evidence: CvmEvidence
    workload: bytes
    recipient: CvmRecipient

    def __init__(self, evidence: CvmEvidence, workload: bytes, recipient: CvmRecipient) -> None:
        d = self.__dict__
        d['evidence'] = evidence
        d['workload'] = workload
        d['recipient'] = recipient


@dataclass(init=False, repr=False, eq=False)
class DdiCvmReleaseKeyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('wrapped', 'statement', 'policy_version')

    wrapped: CvmWrapped
    statement: bytes
    policy_version: int

    def __init__(self, wrapped: CvmWrapped, statement: bytes, policy_version: int) -> None:
        d = self.__dict__
        d['wrapped'] = wrapped
        d['statement'] = statement
        d['policy_version'] = policy_version


@dataclass(init=False, repr=False, eq=False)
class DdiCvmSealReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('workload', 'data')

    workload: bytes
    data: bytes

    def __init__(self, workload: bytes, data: bytes) -> None:
        d = self.__dict__
        d['workload'] = workload
        d['data'] = data


@dataclass(init=False, repr=False, eq=False)
class DdiCvmSealResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('sealed',)

    sealed: bytes

    def __init__(self, sealed: bytes) -> None:
        d = self.__dict__
        d['sealed'] = sealed


@dataclass(init=False, repr=False, eq=False)
class DdiCvmUnsealReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('evidence', 'sealed', 'recipient')

    evidence: CvmEvidence
    sealed: bytes
    recipient: CvmRecipient

    def __init__(self, evidence: CvmEvidence, sealed: bytes, recipient: CvmRecipient) -> None:
        d = self.__dict__
        d['evidence'] = evidence
        d['sealed'] = sealed
        d['recipient'] = recipient


@dataclass(init=False, repr=False, eq=False)
class DdiCvmUnsealResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('wrapped', 'statement')

    wrapped: CvmWrapped
    statement: bytes

    def __init__(self, wrapped: CvmWrapped, statement: bytes) -> None:
        d = self.__dict__
        d['wrapped'] = wrapped
        d['statement'] = statement


@dataclass(init=False, repr=False, eq=False)
class DdiCvmSetOwnerReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('owner_pub',)

    owner_pub: bytes

    def __init__(self, owner_pub: bytes) -> None:
        d = self.__dict__
        d['owner_pub'] = owner_pub


@dataclass(init=False, repr=False, eq=False)
class DdiCvmSetOwnerResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiCvmRegisterVmReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('body', 'owner_sig')

    body: bytes
    owner_sig: bytes

    def __init__(self, body: bytes, owner_sig: bytes) -> None:
        d = self.__dict__
        d['body'] = body
        d['owner_sig'] = owner_sig


@dataclass(init=False, repr=False, eq=False)
class DdiCvmRegisterVmResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiCvmSetPolicyReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('body', 'owner_sig')

    body: bytes
    owner_sig: bytes

    def __init__(self, body: bytes, owner_sig: bytes) -> None:
        d = self.__dict__
        d['body'] = body
        d['owner_sig'] = owner_sig


@dataclass(init=False, repr=False, eq=False)
class DdiCvmSetPolicyResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('version',)

    version: int

    def __init__(self, version: int) -> None:
        d = self.__dict__
        d['version'] = version


@dataclass(init=False, repr=False, eq=False)
class DdiCvmGetOwnerInfoReq(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ()

    def __init__(self) -> None:
        pass


@dataclass(init=False, repr=False, eq=False)
class DdiCvmGetOwnerInfoResp(Message):
    SCHEMA: ClassVar[Struct]
    FIELDS = ('owner_set', 'last_seq', 'vms', 'policies')

    owner_set: bool
    last_seq: int
    vms: int
    policies: int

    def __init__(self, owner_set: bool, last_seq: int, vms: int, policies: int) -> None:
        d = self.__dict__
        d['owner_set'] = owner_set
        d['last_seq'] = last_seq
        d['vms'] = vms
        d['policies'] = policies
