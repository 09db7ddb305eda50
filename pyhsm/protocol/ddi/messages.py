# GENERATED FILE, do not edit: written by pyhsm/protocol/ddi/typegen.py from the MBOR schemas in
# pyhsm/protocol/ddi/schemas.py and schemas_vendor.py. Regenerate after changing a schema with
#     build/venv/bin/python -m pyhsm.protocol.ddi.typegen
"""Typed DDI messages: one frozen dataclass per MBOR struct (docs/ddi.md, docs/vendor-ops.md).

``mbor.Struct`` uses the class of its name as ``cls``, so decoded messages are instances of these
classes and ``SCHEMA`` is the struct that encodes and decodes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from pyhsm.protocol.ddi.mbor import Struct


@dataclass(frozen=True)
class DdiApiRev:
    SCHEMA: ClassVar[Struct]

    major: int
    minor: int


@dataclass(frozen=True)
class DdiReqHdr:
    SCHEMA: ClassVar[Struct]

    op: int
    rev: DdiApiRev | None = None
    sess_id: int | None = None


@dataclass(frozen=True)
class DdiRespHdr:
    SCHEMA: ClassVar[Struct]

    op: int
    status: int
    fips_approved: bool
    rev: DdiApiRev | None = None
    sess_id: int | None = None


@dataclass(frozen=True)
class DdiDerPublicKey:
    SCHEMA: ClassVar[Struct]

    der: bytes
    key_kind: int


@dataclass(frozen=True)
class DdiTargetKeyMetadata:
    SCHEMA: ClassVar[Struct]

    blob: bytes


@dataclass(frozen=True)
class DdiTargetKeyProperties:
    SCHEMA: ClassVar[Struct]

    key_metadata: DdiTargetKeyMetadata
    key_label: bytes


@dataclass(frozen=True)
class DdiEncryptedEstablishCredential:
    SCHEMA: ClassVar[Struct]

    encrypted_id: bytes
    encrypted_pin: bytes
    iv: bytes
    nonce: bytes
    tag: bytes


@dataclass(frozen=True)
class DdiEncryptedSessionCredential:
    SCHEMA: ClassVar[Struct]

    encrypted_id: bytes
    encrypted_pin: bytes
    encrypted_seed: bytes
    iv: bytes
    nonce: bytes
    tag: bytes


@dataclass(frozen=True)
class DdiEncryptedPin:
    SCHEMA: ClassVar[Struct]

    encrypted_pin: bytes
    iv: bytes
    nonce: bytes
    tag: bytes


@dataclass(frozen=True)
class DdiMaskedKeyAttributes:
    SCHEMA: ClassVar[Struct]

    blob: bytes


@dataclass(frozen=True)
class DdiMaskedKeyMetadata:
    SCHEMA: ClassVar[Struct]

    key_type: int
    key_attributes: DdiMaskedKeyAttributes
    key_label: bytes
    key_length: int
    svn: int | None = None
    bks2_index: int | None = None
    key_tag: int | None = None


@dataclass(frozen=True)
class DdiEmpty:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class CvmEvidence:
    SCHEMA: ClassVar[Struct]

    vm_id: bytes
    attest: bytes
    signature: bytes
    pcr_values: bytes


@dataclass(frozen=True)
class CvmRecipient:
    SCHEMA: ClassVar[Struct]

    kem_pub: bytes
    ecdh_pub: bytes


@dataclass(frozen=True)
class CvmWrapped:
    SCHEMA: ClassVar[Struct]

    kem_ct: bytes
    ecdh_pub: bytes
    ciphertext: bytes


@dataclass(frozen=True)
class CvmRegisterVmBody:
    SCHEMA: ClassVar[Struct]

    seq: int
    vm_id: bytes
    ek_public: bytes
    ak_public: bytes


@dataclass(frozen=True)
class CvmSetPolicyBody:
    SCHEMA: ClassVar[Struct]

    seq: int
    workload: bytes
    vm_id: bytes
    pcr_bank: int
    pcr_mask: int
    pcr_values: bytes
    key_tag: int | None = None


@dataclass(frozen=True)
class DdiGetApiRevReq:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiGetApiRevResp:
    SCHEMA: ClassVar[Struct]

    min: DdiApiRev
    max: DdiApiRev


@dataclass(frozen=True)
class DdiGetDeviceInfoReq:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiGetDeviceInfoResp:
    SCHEMA: ClassVar[Struct]

    kind: int
    tables: int
    fips_approved: bool


@dataclass(frozen=True)
class DdiDeleteKeyReq:
    SCHEMA: ClassVar[Struct]

    key_id: int


@dataclass(frozen=True)
class DdiDeleteKeyResp:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiOpenKeyReq:
    SCHEMA: ClassVar[Struct]

    key_tag: int


@dataclass(frozen=True)
class DdiOpenKeyResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    key_kind: int
    pub_key: DdiDerPublicKey | None = None
    bulk_key_id: int | None = None


@dataclass(frozen=True)
class DdiAttestKeyReq:
    SCHEMA: ClassVar[Struct]

    key_id: int
    report_data: bytes


@dataclass(frozen=True)
class DdiAttestKeyResp:
    SCHEMA: ClassVar[Struct]

    report: bytes


@dataclass(frozen=True)
class DdiRsaModExpReq:
    SCHEMA: ClassVar[Struct]

    key_id: int
    y: bytes
    op_type: int


@dataclass(frozen=True)
class DdiRsaModExpResp:
    SCHEMA: ClassVar[Struct]

    x: bytes


@dataclass(frozen=True)
class DdiRsaUnwrapReq:
    SCHEMA: ClassVar[Struct]

    key_id: int
    wrapped_blob: bytes
    wrapped_blob_key_class: int
    wrapped_blob_padding: int
    wrapped_blob_hash_algorithm: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None


@dataclass(frozen=True)
class DdiRsaUnwrapResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    kind: int
    masked_key: bytes
    pub_key: DdiDerPublicKey | None = None
    bulk_key_id: int | None = None


@dataclass(frozen=True)
class DdiGetUnwrappingKeyReq:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiGetUnwrappingKeyResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    pub_key: DdiDerPublicKey
    masked_key: bytes


@dataclass(frozen=True)
class DdiEccGenerateKeyPairReq:
    SCHEMA: ClassVar[Struct]

    curve: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None


@dataclass(frozen=True)
class DdiEccGenerateKeyPairResp:
    SCHEMA: ClassVar[Struct]

    private_key_id: int
    pub_key: DdiDerPublicKey
    masked_key: bytes


@dataclass(frozen=True)
class DdiEccSignReq:
    SCHEMA: ClassVar[Struct]

    key_id: int
    digest: bytes
    digest_algo: int


@dataclass(frozen=True)
class DdiEccSignResp:
    SCHEMA: ClassVar[Struct]

    signature: bytes


@dataclass(frozen=True)
class DdiAesGenerateKeyReq:
    SCHEMA: ClassVar[Struct]

    key_size: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None


@dataclass(frozen=True)
class DdiAesGenerateKeyResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    masked_key: bytes
    bulk_key_id: int | None = None


@dataclass(frozen=True)
class DdiAesEncryptDecryptReq:
    SCHEMA: ClassVar[Struct]

    key_id: int
    op: int
    msg: bytes
    iv: bytes


@dataclass(frozen=True)
class DdiAesEncryptDecryptResp:
    SCHEMA: ClassVar[Struct]

    msg: bytes
    iv: bytes


@dataclass(frozen=True)
class DdiEcdhKeyExchangeReq:
    SCHEMA: ClassVar[Struct]

    priv_key_id: int
    pub_key_der: bytes
    key_type: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None


@dataclass(frozen=True)
class DdiEcdhKeyExchangeResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    masked_key: bytes


@dataclass(frozen=True)
class DdiHkdfDeriveReq:
    SCHEMA: ClassVar[Struct]

    key_id: int
    hash_algorithm: int
    key_type: int
    key_properties: DdiTargetKeyProperties
    salt: bytes | None = None
    info: bytes | None = None
    key_tag: int | None = None
    key_length: int | None = None


@dataclass(frozen=True)
class DdiHkdfDeriveResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    masked_key: bytes
    bulk_key_id: int | None = None


@dataclass(frozen=True)
class DdiKbkdfCounterHmacDeriveReq:
    SCHEMA: ClassVar[Struct]

    key_id: int
    hash_algorithm: int
    key_type: int
    key_properties: DdiTargetKeyProperties
    label: bytes | None = None
    context: bytes | None = None
    key_tag: int | None = None
    key_length: int | None = None


@dataclass(frozen=True)
class DdiKbkdfCounterHmacDeriveResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    masked_key: bytes
    bulk_key_id: int | None = None


@dataclass(frozen=True)
class DdiHmacReq:
    SCHEMA: ClassVar[Struct]

    key_id: int
    msg: bytes


@dataclass(frozen=True)
class DdiHmacResp:
    SCHEMA: ClassVar[Struct]

    tag: bytes


@dataclass(frozen=True)
class DdiGetEstablishCredEncryptionKeyReq:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiGetEstablishCredEncryptionKeyResp:
    SCHEMA: ClassVar[Struct]

    pub_key: DdiDerPublicKey
    nonce: bytes
    pub_key_signature: bytes


@dataclass(frozen=True)
class DdiEstablishCredentialReq:
    SCHEMA: ClassVar[Struct]

    encrypted_credential: DdiEncryptedEstablishCredential
    pub_key: DdiDerPublicKey
    masked_bk3: bytes
    bmk: bytes
    masked_unwrapping_key: bytes
    pota_sig: bytes
    pota_pub_key: DdiDerPublicKey


@dataclass(frozen=True)
class DdiEstablishCredentialResp:
    SCHEMA: ClassVar[Struct]

    bmk: bytes


@dataclass(frozen=True)
class DdiGetSessionEncryptionKeyReq:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiGetSessionEncryptionKeyResp:
    SCHEMA: ClassVar[Struct]

    pub_key: DdiDerPublicKey
    nonce: bytes
    pub_key_signature: bytes


@dataclass(frozen=True)
class DdiOpenSessionReq:
    SCHEMA: ClassVar[Struct]

    encrypted_credential: DdiEncryptedSessionCredential
    pub_key: DdiDerPublicKey


@dataclass(frozen=True)
class DdiOpenSessionResp:
    SCHEMA: ClassVar[Struct]

    sess_id: int
    short_app_id: int
    bmk_session: bytes


@dataclass(frozen=True)
class DdiCloseSessionReq:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiCloseSessionResp:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiChangePinReq:
    SCHEMA: ClassVar[Struct]

    new_pin: DdiEncryptedPin
    pub_key: DdiDerPublicKey


@dataclass(frozen=True)
class DdiChangePinResp:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiUnmaskKeyReq:
    SCHEMA: ClassVar[Struct]

    masked_key: bytes


@dataclass(frozen=True)
class DdiUnmaskKeyResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    kind: int
    masked_key: bytes
    pub_key: DdiDerPublicKey | None = None
    bulk_key_id: int | None = None


@dataclass(frozen=True)
class DdiGetCertChainInfoReq:
    SCHEMA: ClassVar[Struct]

    slot_id: int


@dataclass(frozen=True)
class DdiGetCertChainInfoResp:
    SCHEMA: ClassVar[Struct]

    num_certs: int
    thumbprint: bytes


@dataclass(frozen=True)
class DdiGetCertificateReq:
    SCHEMA: ClassVar[Struct]

    slot_id: int
    cert_id: int


@dataclass(frozen=True)
class DdiGetCertificateResp:
    SCHEMA: ClassVar[Struct]

    certificate: bytes


@dataclass(frozen=True)
class DdiReopenSessionReq:
    SCHEMA: ClassVar[Struct]

    encrypted_credential: DdiEncryptedSessionCredential
    pub_key: DdiDerPublicKey
    bmk_session: bytes


@dataclass(frozen=True)
class DdiReopenSessionResp:
    SCHEMA: ClassVar[Struct]

    sess_id: int
    short_app_id: int
    bmk_session: bytes


@dataclass(frozen=True)
class DdiInitBk3Req:
    SCHEMA: ClassVar[Struct]

    bk3: bytes


@dataclass(frozen=True)
class DdiInitBk3Resp:
    SCHEMA: ClassVar[Struct]

    masked_bk3: bytes
    vm_launch_guid: bytes


@dataclass(frozen=True)
class DdiGetSealedBk3Req:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiGetSealedBk3Resp:
    SCHEMA: ClassVar[Struct]

    sealed_bk3: bytes


@dataclass(frozen=True)
class DdiSetSealedBk3Req:
    SCHEMA: ClassVar[Struct]

    sealed_bk3: bytes


@dataclass(frozen=True)
class DdiSetSealedBk3Resp:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiMlDsaGenerateKeyReq:
    SCHEMA: ClassVar[Struct]

    params: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None
    seed: bytes | None = None


@dataclass(frozen=True)
class DdiMlDsaGenerateKeyResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    pub_key: bytes
    masked_key: bytes


@dataclass(frozen=True)
class DdiMlDsaSignReq:
    SCHEMA: ClassVar[Struct]

    key_id: int
    message: bytes
    context: bytes | None = None


@dataclass(frozen=True)
class DdiMlDsaSignResp:
    SCHEMA: ClassVar[Struct]

    signature: bytes


@dataclass(frozen=True)
class DdiMlDsaGetPublicKeyReq:
    SCHEMA: ClassVar[Struct]

    key_id: int


@dataclass(frozen=True)
class DdiMlDsaGetPublicKeyResp:
    SCHEMA: ClassVar[Struct]

    params: int
    pub_key: bytes


@dataclass(frozen=True)
class DdiMlKemGenerateKeyReq:
    SCHEMA: ClassVar[Struct]

    params: int
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None
    seed: bytes | None = None


@dataclass(frozen=True)
class DdiMlKemGenerateKeyResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    pub_key: bytes
    masked_key: bytes


@dataclass(frozen=True)
class DdiMlKemDecapsulateReq:
    SCHEMA: ClassVar[Struct]

    key_id: int
    ciphertext: bytes
    key_properties: DdiTargetKeyProperties
    key_tag: int | None = None


@dataclass(frozen=True)
class DdiMlKemDecapsulateResp:
    SCHEMA: ClassVar[Struct]

    key_id: int
    masked_key: bytes


@dataclass(frozen=True)
class DdiMlKemGetPublicKeyReq:
    SCHEMA: ClassVar[Struct]

    key_id: int


@dataclass(frozen=True)
class DdiMlKemGetPublicKeyResp:
    SCHEMA: ClassVar[Struct]

    params: int
    pub_key: bytes


@dataclass(frozen=True)
class DdiCvmGetNonceReq:
    SCHEMA: ClassVar[Struct]

    vm_id: bytes


@dataclass(frozen=True)
class DdiCvmGetNonceResp:
    SCHEMA: ClassVar[Struct]

    nonce: bytes
    lifetime_ms: int


@dataclass(frozen=True)
class DdiCvmVerifyEvidenceReq:
    SCHEMA: ClassVar[Struct]

    evidence: CvmEvidence


@dataclass(frozen=True)
class DdiCvmVerifyEvidenceResp:
    SCHEMA: ClassVar[Struct]

    statement: bytes


@dataclass(frozen=True)
class DdiCvmReleaseKeyReq:
    SCHEMA: ClassVar[Struct]

    evidence: CvmEvidence
    workload: bytes
    recipient: CvmRecipient


@dataclass(frozen=True)
class DdiCvmReleaseKeyResp:
    SCHEMA: ClassVar[Struct]

    wrapped: CvmWrapped
    statement: bytes
    policy_version: int


@dataclass(frozen=True)
class DdiCvmSealReq:
    SCHEMA: ClassVar[Struct]

    workload: bytes
    data: bytes


@dataclass(frozen=True)
class DdiCvmSealResp:
    SCHEMA: ClassVar[Struct]

    sealed: bytes


@dataclass(frozen=True)
class DdiCvmUnsealReq:
    SCHEMA: ClassVar[Struct]

    evidence: CvmEvidence
    sealed: bytes
    recipient: CvmRecipient


@dataclass(frozen=True)
class DdiCvmUnsealResp:
    SCHEMA: ClassVar[Struct]

    wrapped: CvmWrapped
    statement: bytes


@dataclass(frozen=True)
class DdiCvmSetOwnerReq:
    SCHEMA: ClassVar[Struct]

    owner_pub: bytes


@dataclass(frozen=True)
class DdiCvmSetOwnerResp:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiCvmRegisterVmReq:
    SCHEMA: ClassVar[Struct]

    body: bytes
    owner_sig: bytes


@dataclass(frozen=True)
class DdiCvmRegisterVmResp:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiCvmSetPolicyReq:
    SCHEMA: ClassVar[Struct]

    body: bytes
    owner_sig: bytes


@dataclass(frozen=True)
class DdiCvmSetPolicyResp:
    SCHEMA: ClassVar[Struct]

    version: int


@dataclass(frozen=True)
class DdiCvmGetOwnerInfoReq:
    SCHEMA: ClassVar[Struct]


@dataclass(frozen=True)
class DdiCvmGetOwnerInfoResp:
    SCHEMA: ClassVar[Struct]

    owner_set: bool
    last_seq: int
    vms: int
    policies: int
