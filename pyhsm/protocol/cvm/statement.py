"""The HSM's countersignature of verified evidence: a tagged COSE_Sign1, ES384, by the DICE attestation
key (docs/vendor-ops.md, "Countersigned statement")."""

from __future__ import annotations

import enum
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.crypto import cbor, cose

VERSION = 1


class Claim(enum.IntEnum):
    """The keys of the statement's CBOR claims map (docs/vendor-ops.md, "Countersigned statement")."""

    VERSION = 0
    PURPOSE = 1           # "verify", "release" or "unseal"
    VM_ID = 2
    EK_SHA256 = 3         # SHA-256 of the registered EK's SubjectPublicKeyInfo
    AK_NAME = 4           # the AK's TPM name
    NONCE = 5
    ATTEST_SHA384 = 6     # SHA-384 of the quote's TPMS_ATTEST
    PCR_SELECTION = 7     # [[TPM_ALG_ID, PCR mask], ...]
    PCR_DIGEST = 8        # the quote's pcrDigest
    CLOCK = 9             # the quote's clock
    WORKLOAD = 10         # release only: the policy's workload name
    POLICY_VERSION = 11   # release only: the version of the policy that released the key


class StatementError(ValueError):
    """Not a statement signed by the expected key."""


def build(signer: ec.EllipticCurvePrivateKey, claims: dict[Claim, Any]) -> bytes:
    """Sign ``claims``; the version claim is added first."""
    return cose.sign1(signer, cbor.encode({int(Claim.VERSION): VERSION, **{int(k): v for k, v in claims.items()}}))


def verify(statement: bytes, public: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """The claims of a statement whose ES384 signature verifies under ``public``."""
    try:
        claims = cbor.decode(cose.verify1(statement, public))
    except (cose.CoseError, cbor.CborError) as exc:
        raise StatementError(f"invalid statement: {exc}") from None
    if not isinstance(claims, dict) or claims.get(Claim.VERSION) != VERSION:
        raise StatementError("unknown statement version")
    return claims
