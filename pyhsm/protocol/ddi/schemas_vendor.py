"""The vendor DDI operations (docs/vendor-ops.md): post-quantum keys and confidential-VM evidence,
policies, key release and sealing, declared like ``pyhsm.protocol.ddi.schemas.DDI_OPS``; ``pyhsm.protocol.ddi.optable`` joins the two.

Vendor opcodes start at 0x8000; vendor statuses at 0x08F00001 (``VendorStatus``).
"""

from __future__ import annotations

import enum

from pyhsm.protocol.ddi.mbor import BOOL, U16, U32, U64, Field, Fixed, Struct, Var
from pyhsm.protocol.ddi.schemas import KEY_PROPERTIES, OpSpec, SessionKind, public, secret

VENDOR_BASE = 0x8000


class VendorStatus(enum.IntEnum):
    """Statuses of the vendor operations (response header ``status``)."""

    CvmOwnerNotSet = 0x08F00001
    CvmOwnerAlreadySet = 0x08F00002
    CvmOwnerSignatureInvalid = 0x08F00003
    CvmOwnerSequenceReplayed = 0x08F00004
    CvmVmNotRegistered = 0x08F00005
    CvmNonceUnknown = 0x08F00006
    CvmNonceExpired = 0x08F00007
    CvmNonceStale = 0x08F00008
    CvmQuoteMalformed = 0x08F00009
    CvmQuoteSignatureInvalid = 0x08F0000A
    CvmQuoteSignerMismatch = 0x08F0000B
    CvmPcrDigestMismatch = 0x08F0000C
    CvmPolicyNotFound = 0x08F0000D
    CvmPolicyMismatch = 0x08F0000E
    CvmPolicyVmMismatch = 0x08F0000F
    CvmSealedBlobInvalid = 0x08F00010
    CvmTooManyNonces = 0x08F00011
    CvmReleaseKeyInvalid = 0x08F00012


_MASKED = Var(3072)
_STATEMENT = Var(2048)
_VM_ID = Var(64)
_WORKLOAD = Var(64)
SEAL_DATA_MAX = 2048
SEAL_OVERHEAD = 90          # header 62 (magic, PCR bank, PCR mask, policy digest) + GCM IV 12 + tag 16
_SEALED = Var(SEAL_DATA_MAX + SEAL_OVERHEAD)

# Field classification (``P`` safe to log, ``F`` redacted in traces) as in ``pyhsm.protocol.ddi.schemas``.
EVIDENCE = Struct("CvmEvidence", public(1, "vm_id", _VM_ID), public(2, "attest", Var(1024)), public(3, "signature", Var(1024)),
                  public(4, "pcr_values", Var(3072)))
RECIPIENT = Struct("CvmRecipient", public(1, "kem_pub", Var(1184)), public(2, "ecdh_pub", Var(120)))
WRAPPED = Struct("CvmWrapped", secret(1, "kem_ct", Var(1568)), public(2, "ecdh_pub", Var(120)), secret(3, "ciphertext", Var(2064)))

# Bodies of the owner commands: signed as MBOR bytes, carried in the op's ``body`` field.
REGISTER_VM_BODY = Struct("CvmRegisterVmBody", public(1, "seq", U64), public(2, "vm_id", _VM_ID), public(3, "ek_public", Var(600)),
                          public(4, "ak_public", Var(600)))
SET_POLICY_BODY = Struct("CvmSetPolicyBody", public(1, "seq", U64), public(2, "workload", _WORKLOAD), public(3, "vm_id", _VM_ID),
                         public(4, "pcr_bank", U16), public(5, "pcr_mask", U32), public(6, "pcr_values", Var(1536)),
                         public(7, "key_tag", U16, True))
OWNER_BODIES: dict[str, Struct] = {"CvmRegisterVm": REGISTER_VM_BODY, "CvmSetPolicy": SET_POLICY_BODY}

_OWNER_REQUEST = (public(1, "body", Var(4096)), public(2, "owner_sig", Fixed(96)))
_PQC_GENERATE = (public(1, "key_id", U16), public(2, "pub_key", Var(2592)), secret(3, "masked_key", _MASKED))


def _op(code: int, name: str, request: tuple[Field, ...], response: tuple[Field, ...]) -> OpSpec:
    return OpSpec(code, name, SessionKind.IN_SESSION, Struct(f"Ddi{name}Req", *request), Struct(f"Ddi{name}Resp", *response))


VENDOR_OPS: dict[int, OpSpec] = {spec.code: spec for spec in (
    _op(0x8000, "MlDsaGenerateKey",
        (public(1, "params", U32), public(2, "key_tag", U16, True), public(3, "key_properties", KEY_PROPERTIES),
         secret(4, "seed", Var(128), True)), _PQC_GENERATE),
    _op(0x8001, "MlDsaSign", (public(1, "key_id", U16), secret(2, "message", Var(4096)), public(3, "context", Var(255), True)),
        (public(1, "signature", Var(4627)),)),
    _op(0x8002, "MlDsaGetPublicKey", (public(1, "key_id", U16),), (public(1, "params", U32), public(2, "pub_key", Var(2592)))),
    _op(0x8003, "MlKemGenerateKey",
        (public(1, "params", U32), public(2, "key_tag", U16, True), public(3, "key_properties", KEY_PROPERTIES),
         secret(4, "seed", Var(128), True)), _PQC_GENERATE),
    _op(0x8004, "MlKemDecapsulate",
        (public(1, "key_id", U16), secret(2, "ciphertext", Var(1600)), public(3, "key_tag", U16, True),
         public(4, "key_properties", KEY_PROPERTIES)),
        (public(1, "key_id", U16), secret(2, "masked_key", _MASKED))),
    _op(0x8005, "MlKemGetPublicKey", (public(1, "key_id", U16),), (public(1, "params", U32), public(2, "pub_key", Var(1568)))),
    _op(0x8010, "CvmGetNonce", (public(1, "vm_id", _VM_ID),), (public(1, "nonce", Fixed(32)), public(2, "lifetime_ms", U32))),
    _op(0x8011, "CvmVerifyEvidence", (public(1, "evidence", EVIDENCE),), (public(1, "statement", _STATEMENT),)),
    _op(0x8012, "CvmReleaseKey",
        (public(1, "evidence", EVIDENCE), public(2, "workload", _WORKLOAD), public(3, "recipient", RECIPIENT)),
        (public(1, "wrapped", WRAPPED), public(2, "statement", _STATEMENT), public(3, "policy_version", U32))),
    _op(0x8013, "CvmSeal", (public(1, "workload", _WORKLOAD), secret(2, "data", Var(SEAL_DATA_MAX))),
        (secret(1, "sealed", _SEALED),)),
    _op(0x8014, "CvmUnseal",
        (public(1, "evidence", EVIDENCE), secret(2, "sealed", _SEALED), public(3, "recipient", RECIPIENT)),
        (public(1, "wrapped", WRAPPED), public(2, "statement", _STATEMENT))),
    _op(0x8020, "CvmSetOwner", (public(1, "owner_pub", Var(120)),), ()),
    _op(0x8021, "CvmRegisterVm", _OWNER_REQUEST, ()),
    _op(0x8022, "CvmSetPolicy", _OWNER_REQUEST, (public(1, "version", U32),)),
    _op(0x8023, "CvmGetOwnerInfo", (),
        (public(1, "owner_set", BOOL), public(2, "last_seq", U64), public(3, "vms", U16), public(4, "policies", U16))),
)}
