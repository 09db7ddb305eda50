"""The key attestation report (docs/ddi.md, "Attestation report"): a tagged COSE_Sign1 (ES384) over a CBOR claims map."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyhsm.crypto import cbor, cose
from pyhsm.protocol.ddi.types import KINDS, Family, Flag, KeyType

PUBLIC_KEY_FIELD = 525
REPORT_DATA_LEN = 128
_CURVE_IDS = {"secp256r1": 1, "secp384r1": 2, "secp521r1": 3}

# Report flag bit -> stored key flag (bits 0 "imported" and 2 "generated" come from Flag.LOCAL).
_REPORT_BITS = {1: Flag.SESSION, 3: Flag.ENCRYPT, 4: Flag.DECRYPT, 5: Flag.SIGN, 6: Flag.VERIFY,
                7: Flag.WRAP, 8: Flag.UNWRAP, 9: Flag.DERIVE}


def _unsigned(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def cose_key(public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    if isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_numbers()
        return cbor.encode({1: 2, -1: _CURVE_IDS[public.curve.name], -2: _unsigned(point.x), -3: _unsigned(point.y)})
    nums = public.public_numbers()
    return cbor.encode({1: 3, -1: _unsigned(nums.n), -2: _unsigned(nums.e)})


def report_flags(flags: Flag, kind: KeyType, physical: bool) -> int:
    """The report's key-flag bits. Physical (docs/ddi.md, "Device profiles"): bulk keys count as
    imported, the wrap bit is never reported, HMAC keys report no sign/verify bits."""
    generated = bool(flags & Flag.LOCAL) and not (physical and KINDS[kind].family is Family.BULK)
    hidden: set[int] = set()
    if physical:
        hidden = {7, 5, 6} if KINDS[kind].family is Family.HMAC else {7}
    value = 1 << 2 if generated else 1 << 0
    for bit, flag in _REPORT_BITS.items():
        if flags & flag and bit not in hidden:
            value |= 1 << bit
    return value


def build(signer: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | None,
          flags: int, app_id: bytes, report_data: bytes) -> bytes:
    """The tagged COSE_Sign1 report; ``report_data`` is zero-padded to 128 bytes. Without a public
    key (a symmetric key) the key field is all zeros and its size 0."""
    key = cose_key(public) if public is not None else b""
    payload = cbor.encode({
        0: 1, 1: key.ljust(PUBLIC_KEY_FIELD, b"\0"), 2: len(key), 3: flags, 4: app_id,
        5: report_data.ljust(REPORT_DATA_LEN, b"\0"), 6: bytes(16)})
    return cose.sign1(signer, payload)
