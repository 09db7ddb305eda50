"""The HSM's countersignature of verified evidence: a tagged COSE_Sign1, ES384, by the DICE attestation
key (docs/vendor-ops.md, "Countersigned statement")."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm import cbor, cose

VERSION = 1


class StatementError(ValueError):
    """Not a statement signed by the expected key."""


def build(signer: ec.EllipticCurvePrivateKey, claims: dict[int, Any]) -> bytes:
    """Sign ``claims`` (keys 1.., see the doc); key 0 (version) is added first."""
    return cose.sign1(signer, cbor.encode({0: VERSION, **claims}))


def verify(statement: bytes, public: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """The claims of a statement whose ES384 signature verifies under ``public``."""
    try:
        claims = cbor.decode(cose.verify1(statement, public))
    except (cose.CoseError, cbor.CborError) as exc:
        raise StatementError(f"invalid statement: {exc}") from None
    if not isinstance(claims, dict) or claims.get(0) != VERSION:
        raise StatementError("unknown statement version")
    return claims
