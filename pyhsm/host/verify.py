"""Host-side checks of what the guest reported (the guest is not trusted to grade itself)."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils


def verify_p384_signature(detail: dict[str, Any]) -> str:
    """Verify the guest's ``sign`` step: ``public_key_der`` (SubjectPublicKeyInfo, hex), ``digest``
    (48 bytes, hex) and ``signature`` (raw r||s, 96 bytes, hex). Returns a note; raises
    ``ValueError`` (bad encoding) or ``cryptography.exceptions.InvalidSignature``."""
    public = serialization.load_der_public_key(bytes.fromhex(detail["public_key_der"]))
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp384r1":
        raise ValueError(f"the signing key is not a P-384 key: {public!r}")
    digest = bytes.fromhex(detail["digest"])
    raw = bytes.fromhex(detail["signature"])
    if len(digest) != 48 or len(raw) != 96:
        raise ValueError(f"digest/signature sizes {len(digest)}/{len(raw)}, expected 48/96")
    der = utils.encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    public.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA384())))
    return f"ECDSA P-384 over {digest[:4].hex()}.. verified with cryptography"
