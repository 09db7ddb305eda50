"""COSE_Sign1 with ES384 (RFC 9052), the one signature envelope the HSM produces.

Key attestation reports (docs/ddi.md, "Attestation report") and countersigned evidence both use it: tagged (18), protected
header ``{alg: ES384, content type: "application/cbor"}``, an empty unprotected map, the payload
attached, and the signature as raw r || s (96 bytes) over the ``Signature1`` structure.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from pyhsm.crypto import cbor

SIGN1_TAG = 18
ES384 = -35
PROTECTED = cbor.encode({1: ES384, 3: "application/cbor"})
_HALF = 48


class CoseError(ValueError):
    """Not a well-formed COSE_Sign1, or its signature does not verify; the message says which."""


def _to_be_signed(protected: bytes, payload: bytes) -> bytes:
    return cbor.encode(["Signature1", protected, b"", payload])


def sign1(signer: ec.EllipticCurvePrivateKey, payload: bytes) -> bytes:
    """The tagged COSE_Sign1 of ``payload`` signed by the P-384 key ``signer``."""
    r, s = decode_dss_signature(signer.sign(_to_be_signed(PROTECTED, payload), ec.ECDSA(hashes.SHA384())))
    signature = r.to_bytes(_HALF, "big") + s.to_bytes(_HALF, "big")
    return cbor.encode(cbor.Tag(SIGN1_TAG, [PROTECTED, {}, payload, signature]))


def verify1(message: bytes, public: ec.EllipticCurvePublicKey) -> bytes:
    """The payload of ``message`` if it is a tagged ES384 COSE_Sign1 that ``public`` signed."""
    try:
        item = cbor.decode(message)
    except cbor.CborError as exc:
        raise CoseError(f"not CBOR: {exc}") from None
    if not (isinstance(item, cbor.Tag) and item.number == SIGN1_TAG and isinstance(item.value, list)
            and len(item.value) == 4):
        raise CoseError("not a tagged COSE_Sign1 array of four")
    protected, unprotected, payload, signature = item.value
    if not all(isinstance(x, bytes) for x in (protected, payload, signature)) or not isinstance(unprotected, dict):
        raise CoseError("COSE_Sign1 members have the wrong types")
    try:
        header = cbor.decode(protected)
    except cbor.CborError as exc:
        raise CoseError(f"protected header is not CBOR: {exc}") from None
    if not isinstance(header, dict) or header.get(1) != ES384:
        raise CoseError("protected header does not name ES384")
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp384r1":
        raise CoseError("the verifying key is not P-384")
    if len(signature) != 2 * _HALF:
        raise CoseError(f"ES384 signature is {len(signature)} bytes, expected {2 * _HALF}")
    der = encode_dss_signature(int.from_bytes(signature[:_HALF], "big"), int.from_bytes(signature[_HALF:], "big"))
    try:
        public.verify(der, _to_be_signed(protected, payload), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        raise CoseError("signature does not verify") from None
    return payload
