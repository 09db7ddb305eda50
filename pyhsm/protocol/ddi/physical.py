"""Field formats of the Physical device profile (docs/ddi.md, "Device profiles").

A device that reports Physical carries some fields in the hardware's own formats: ECC public keys as
raw little-endian X || Y (each padded to 32/48/68 bytes), RSA public keys as n little-endian followed
by e in 4 little-endian bytes, ECDSA signatures as little-endian r || s in the same padded sizes,
EccSign digests byte-reversed and zero-padded to 68 bytes, RsaModExp operands byte-reversed, the
first 256 bytes (the RSA-2048 part) of RsaUnwrap blobs byte-reversed and the two halves of the POTA
signature byte-reversed. Handlers and callers always see the plain (Virtual) forms: ``to_device``
turns a decoded message of an op into the device form, ``from_device`` back. Both raise
``DdiFailure`` for a value that has no other form (on the device: the status to answer).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.mbor import Struct
from pyhsm.protocol.ddi.schemas import PUBLIC_KEY
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import HashAlgorithm, KeyType

DIGEST_FIELD = 68

# public kind -> (curve, value bytes, padded field bytes, prime)
_ECC: dict[int, tuple[ec.EllipticCurve, int, int, int]] = {
    KeyType.Ecc256Public: (ec.SECP256R1(), 32, 32, 2**256 - 2**224 + 2**192 + 2**96 - 1),
    KeyType.Ecc384Public: (ec.SECP384R1(), 48, 48, 2**384 - 2**128 - 2**96 + 2**32 - 1),
    KeyType.Ecc521Public: (ec.SECP521R1(), 66, 68, 2**521 - 1),
}
_ECC_BY_RAW = {2 * field: kind for kind, (_, _, field, _) in _ECC.items()}
_ECC_BY_CURVE = {curve.name: kind for kind, (curve, _, _, _) in _ECC.items()}
_RSA_N = {KeyType.Rsa2kPublic: 256, KeyType.Rsa3kPublic: 384, KeyType.Rsa4kPublic: 512}
_SIG_FIELDS = {64: (32, 32), 96: (48, 48), 132: (66, 68)}    # plain length -> (value, field)
_DIGEST_LENGTHS = {HashAlgorithm.Sha1: 20, HashAlgorithm.Sha256: 32, HashAlgorithm.Sha384: 48,
                   HashAlgorithm.Sha512: 64}
_UNWRAP_HEAD = 256


def _le(value: int, size: int) -> bytes:
    return value.to_bytes(size, "little")


def _fail(status: DdiStatus, reason: str) -> DdiFailure:
    return DdiFailure(status, reason)


_EC_PUBLIC_KEY_OID = bytes.fromhex("2a8648ce3d0201")
_CURVE_OIDS = {bytes.fromhex("2a8648ce3d030107"): KeyType.Ecc256Public,
               bytes.fromhex("2b81040022"): KeyType.Ecc384Public, bytes.fromhex("2b81040023"): KeyType.Ecc521Public}


def _tlv(data: bytes, pos: int, tag: int) -> tuple[bytes, int]:
    """The value of the DER element of ``tag`` at ``pos`` and the position after it."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise ValueError("unexpected DER element")
    length, pos = data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        length, pos = int.from_bytes(data[pos:pos + count], "big"), pos + count
    if pos + length > len(data):
        raise ValueError("DER element runs past the end")
    return data[pos:pos + length], pos + length


def ecc_public_to_raw(der: bytes, kind: int | None = None) -> bytes:
    """SPKI DER of a P-256/384/521 key -> raw LE X || Y, parsed for its structure only (the point is
    not validated: that is the device's job); the curve must match ``kind`` when given."""
    try:
        spki_body, end = _tlv(der, 0, 0x30)
        if end != len(der):
            raise ValueError("trailing bytes after the SPKI")
        algorithm, pos = _tlv(spki_body, 0, 0x30)
        key_oid, after = _tlv(algorithm, 0, 0x06)
        curve_oid, _ = _tlv(algorithm, after, 0x06)
        bits, _ = _tlv(spki_body, pos, 0x03)
        curve_kind = _CURVE_OIDS[curve_oid]
        size = _ECC[curve_kind][1]
        if key_oid != _EC_PUBLIC_KEY_OID or bits[:2] != b"\x00\x04" or len(bits) != 2 + 2 * size:
            raise ValueError("not an uncompressed EC point")
    except (ValueError, KeyError):
        raise _fail(DdiStatus.KeyDecodeFailed, "public key is not an uncompressed P-256/384/521 SPKI") from None
    if kind is not None and kind != curve_kind:
        raise _fail(DdiStatus.DerAndKeyTypeMismatch, f"curve of kind {curve_kind} declared as kind {kind}")
    field = _ECC[curve_kind][2]
    x, y = bits[2:2 + size], bits[2 + size:]
    return x[::-1].ljust(field, b"\0") + y[::-1].ljust(field, b"\0")


def ecc_raw_to_public(raw: bytes) -> ec.EllipticCurvePublicKey:
    """Raw LE X || Y -> the public key, validated: a coordinate not below the field prime is
    EccPublicKeyValidationFailed, a point off the curve EccPointValidationFailed."""
    kind = _ECC_BY_RAW.get(len(raw))
    if kind is None:
        raise _fail(DdiStatus.KeyDecodeFailed, f"raw ECC point of {len(raw)} bytes")
    curve, _, field, prime = _ECC[kind]
    x, y = int.from_bytes(raw[:field], "little"), int.from_bytes(raw[field:], "little")
    if x >= prime or y >= prime:
        raise _fail(DdiStatus.EccPublicKeyValidationFailed, "coordinate not below the field prime")
    try:
        return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    except ValueError:
        raise _fail(DdiStatus.EccPointValidationFailed, "point is not on the curve") from None


def _spki(key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def ecc_raw_to_der(raw: bytes, _message: Any = None) -> bytes:
    return _spki(ecc_raw_to_public(raw))


def _ecc_der_to_raw(der: bytes, _message: Any = None) -> bytes:
    return ecc_public_to_raw(der)


def _public_to_device(value: Any) -> Any:
    if value.key_kind in _RSA_N:
        key = serialization.load_der_public_key(value.der)
        assert isinstance(key, rsa.RSAPublicKey)
        nums = key.public_numbers()
        der = _le(nums.n, _RSA_N[value.key_kind]) + _le(nums.e, 4)
    else:
        der = ecc_public_to_raw(value.der, value.key_kind)
    return dataclasses.replace(value, der=der)


def _public_from_device(value: Any) -> Any:
    size = _RSA_N.get(value.key_kind)
    if size is not None:
        raw = value.der
        if len(raw) != size + 4:
            raise _fail(DdiStatus.KeyDecodeFailed, f"raw RSA key of {len(raw)} bytes")
        key = rsa.RSAPublicNumbers(int.from_bytes(raw[size:], "little"), int.from_bytes(raw[:size], "little"))
        return dataclasses.replace(value, der=_spki(key.public_key()))
    public = ecc_raw_to_public(value.der)
    if value.key_kind in _ECC and _ECC_BY_CURVE[public.curve.name] != value.key_kind:
        raise _fail(DdiStatus.DerAndKeyTypeMismatch, f"raw point does not fit key kind {value.key_kind}")
    return dataclasses.replace(value, der=_spki(public))


def signature_to_device(sig: bytes, _message: Any = None) -> bytes:
    """Big-endian r || s (32/48/66 each) -> little-endian, padded to 32/48/68 each; empty stays empty."""
    if not sig:
        return sig
    if len(sig) not in _SIG_FIELDS:
        raise _fail(DdiStatus.InvalidArg, f"signature of {len(sig)} bytes")
    half, field = _SIG_FIELDS[len(sig)]
    return sig[:half][::-1].ljust(field, b"\0") + sig[half:][::-1].ljust(field, b"\0")


def signature_from_device(raw: bytes, _message: Any = None) -> bytes:
    if not raw:
        return raw
    sizes = {2 * field: (half, field) for half, field in _SIG_FIELDS.values()}
    if len(raw) not in sizes:
        raise _fail(DdiStatus.InvalidArg, f"device signature of {len(raw)} bytes")
    half, field = sizes[len(raw)]
    return raw[:half][::-1] + raw[field:field + half][::-1]


def _digest_to_device(digest: bytes, _message: Any = None) -> bytes:
    if len(digest) > DIGEST_FIELD:
        raise _fail(DdiStatus.InvalidArg, f"digest of {len(digest)} bytes")
    return digest[::-1].ljust(DIGEST_FIELD, b"\0")


def _digest_from_device(raw: bytes, message: Any) -> bytes:
    """The device reads as many bytes as ``digest_algo`` produces (InvalidArg for an unknown one)."""
    length = _DIGEST_LENGTHS.get(message.digest_algo)
    if length is None:
        raise _fail(DdiStatus.InvalidArg, f"unknown digest algorithm {message.digest_algo}")
    return raw[:length][::-1]


def _reverse(value: bytes, _message: Any = None) -> bytes:
    return value[::-1]


def _swap_unwrap_head(blob: bytes, _message: Any = None) -> bytes:
    if len(blob) < _UNWRAP_HEAD:
        raise _fail(DdiStatus.RsaUnwrapInvalidRequest, f"wrapped blob of {len(blob)} bytes")
    return blob[:_UNWRAP_HEAD][::-1] + blob[_UNWRAP_HEAD:]


def _swap_halves(sig: bytes, _message: Any = None) -> bytes:
    if len(sig) != 96:
        raise _fail(DdiStatus.InvalidArg, f"POTA signature of {len(sig)} bytes (need 96)")
    return sig[:48][::-1] + sig[48:][::-1]


Convert = Callable[[bytes, Any], bytes]


@dataclass(frozen=True)
class Rule:
    """How one byte field of a message differs: ``to_device`` and ``from_device`` (value, message)."""

    field: str
    to_device: Convert
    from_device: Convert


_SIGNATURE = Rule("pub_key_signature", signature_to_device, signature_from_device)
RULES: dict[tuple[str, str], tuple[Rule, ...]] = {
    ("EccSign", "request"): (Rule("digest", _digest_to_device, _digest_from_device),),
    ("EccSign", "response"): (Rule("signature", signature_to_device, signature_from_device),),
    ("EcdhKeyExchange", "request"): (Rule("pub_key_der", _ecc_der_to_raw, ecc_raw_to_der),),
    ("RsaModExp", "request"): (Rule("y", _reverse, _reverse),),
    ("RsaModExp", "response"): (Rule("x", _reverse, _reverse),),
    ("RsaUnwrap", "request"): (Rule("wrapped_blob", _swap_unwrap_head, _swap_unwrap_head),),
    ("EstablishCredential", "request"): (Rule("pota_sig", _swap_halves, _swap_halves),),
    ("GetEstablishCredEncryptionKey", "response"): (_SIGNATURE,),
    ("GetSessionEncryptionKey", "response"): (_SIGNATURE,),
}


def _convert(op: str, direction: str, message: Any, outgoing: bool) -> Any:
    if message is None:
        return message
    rules, keys = RULES.get((op, direction), ()), _public_key_fields(type(message).SCHEMA)
    if not rules and not keys:
        return message
    changes: dict[str, Any] = {}
    for rule in rules:
        value = getattr(message, rule.field)
        if value is not None:
            changes[rule.field] = (rule.to_device if outgoing else rule.from_device)(value, message)
    for name in keys:
        value = getattr(message, name)
        if value is not None:
            changes[name] = _public_to_device(value) if outgoing else _public_from_device(value)
    return dataclasses.replace(message, **changes) if changes else message


@functools.lru_cache(maxsize=None)
def _public_key_fields(schema: Struct) -> tuple[str, ...]:
    """The fields of a message struct that hold a DER public key (the schema says so once per struct)."""
    return tuple(f.name for f in schema.fields if f.type is PUBLIC_KEY)


def to_device(op: str, direction: str, message: Any) -> Any:
    """``message`` (a decoded ``direction`` = "request"/"response" of ``op``) in the device's form."""
    return _convert(op, direction, message, True)


def from_device(op: str, direction: str, message: Any) -> Any:
    """``message`` in the device's form -> the plain form."""
    return _convert(op, direction, message, False)
