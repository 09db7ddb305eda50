"""The HSM's countersignature of verified evidence: a tagged COSE_Sign1, ES384, by the DICE attestation
key (docs/vendor-ops.md, "Countersigned statement")."""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from pyhsm import cbor

COSE_SIGN1_TAG = 18
PROTECTED = cbor.encode({1: -35, 3: "application/cbor"})
VERSION = 1


class StatementError(ValueError):
    """Not a statement signed by the expected key."""


def build(signer: ec.EllipticCurvePrivateKey, claims: dict[int, Any]) -> bytes:
    """Sign ``claims`` (keys 1.., see the doc); key 0 (version) is added first."""
    payload = cbor.encode({0: VERSION, **claims})
    r, s = decode_dss_signature(signer.sign(cbor.encode(["Signature1", PROTECTED, b"", payload]),
                                            ec.ECDSA(hashes.SHA384())))
    signature = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    return cbor.encode(cbor.Tag(COSE_SIGN1_TAG, [PROTECTED, {}, payload, signature]))


def verify(statement: bytes, public: ec.EllipticCurvePublicKey) -> dict[int, Any]:
    """The claims of a statement whose ES384 signature verifies under ``public``."""
    try:
        item = cbor.decode(statement)
        if not isinstance(item, cbor.Tag) or item.number != COSE_SIGN1_TAG:
            raise StatementError("not a tagged COSE_Sign1")
        protected, _unprotected, payload, signature = item.value
        if protected != PROTECTED or len(signature) != 96:
            raise StatementError("unexpected protected header or signature size")
        der = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
        public.verify(der, cbor.encode(["Signature1", protected, b"", payload]), ec.ECDSA(hashes.SHA384()))
        claims = cbor.decode(payload)
    except (cbor.CborError, ValueError, TypeError, InvalidSignature) as exc:
        if isinstance(exc, StatementError):
            raise
        raise StatementError(f"invalid statement: {type(exc).__name__}") from None
    if not isinstance(claims, dict) or claims.get(0) != VERSION:
        raise StatementError("unknown statement version")
    return claims
