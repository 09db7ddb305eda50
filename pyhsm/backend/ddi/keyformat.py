"""Key material as stored and masked (docs/ddi.md, "Key material formats"), and public keys as SPKI DER.

ECC private keys are PKCS#8 DER (138/185/241 bytes); RSA private keys are the 24-byte "RSA2" header
(little-endian u32: magic, bits, len(e), len(n), len(p), len(q)) followed by n, e, p, q big-endian
(539/795/1051 bytes at e = 65537); every other kind is raw bytes.
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections import OrderedDict

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from pyhsm.protocol.ddi.types import KINDS, VAR_HMAC_LENGTHS, Family, KeyType

RSA_MAGIC = 0x32415352
_RSA_HEADER = struct.Struct("<6I")
ECC_PKCS8_LENGTHS = {KeyType.Ecc256Private: 138, KeyType.Ecc384Private: 185, KeyType.Ecc521Private: 241}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class KeyFormatError(ValueError):
    """Key material that does not decode as its kind."""


_VALIDATED_MAX = 64
_validated: OrderedDict[bytes, None] = OrderedDict()   # SHA-256 of DER private keys OpenSSL validated
_validated_lock = threading.Lock()


def load_external_private(der: bytes) -> PrivateKeyTypes:
    """A DER private key from outside the device (RsaUnwrap), fully validated by OpenSSL (RSA: primes,
    modulus, exponents). Validation is a function of the bytes alone, so the SHA-256 of the last
    keys that passed it is remembered (not the keys) and the same bytes again skip the check, which
    costs up to 0.5 s for RSA-4096. Any algorithm's key is returned (the caller checks the kind it
    expects). Raises ValueError or TypeError like ``load_der_private_key``."""
    digest = hashlib.sha256(der).digest()
    with _validated_lock:
        known = digest in _validated
    key = serialization.load_der_private_key(der, None, unsafe_skip_rsa_key_validation=known)
    with _validated_lock:
        _validated[digest] = None
        _validated.move_to_end(digest)
        while len(_validated) > _VALIDATED_MAX:
            _validated.popitem(last=False)
    return key


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def private_to_material(key: PrivateKey) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    nums = key.private_numbers()
    parts = [_int_bytes(nums.public_numbers.n), _int_bytes(nums.public_numbers.e),
             _int_bytes(nums.p), _int_bytes(nums.q)]
    header = _RSA_HEADER.pack(RSA_MAGIC, key.key_size, len(parts[1]), len(parts[0]), len(parts[2]),
                              len(parts[3]))
    return header + b"".join(parts)


def material_to_private(kind: KeyType, material: bytes) -> PrivateKey:
    """Load an RSA or ECC private key of ``kind``; raises ``KeyFormatError``."""
    family = KINDS[kind].family
    try:
        if family is Family.ECC:
            key = serialization.load_der_private_key(material, None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.key_size != KINDS[kind].bits:
                raise KeyFormatError(f"not a {kind.name} key")
            return key
        if family is Family.RSA:
            return _rsa_from_blob(kind, material)
    except (ValueError, TypeError, struct.error) as exc:
        raise KeyFormatError(f"{kind.name}: {exc}") from None
    raise KeyFormatError(f"{kind.name} has no private-key object")


def _rsa_from_blob(kind: KeyType, blob: bytes) -> rsa.RSAPrivateKey:
    magic, bits, e_len, n_len, p_len, q_len = _RSA_HEADER.unpack_from(blob)
    if magic != RSA_MAGIC or bits != KINDS[kind].bits:
        raise KeyFormatError("bad RSA blob header")
    if len(blob) != _RSA_HEADER.size + e_len + n_len + p_len + q_len:
        raise KeyFormatError("RSA blob length does not match its header")
    pos = _RSA_HEADER.size
    values = []
    for length in (n_len, e_len, p_len, q_len):
        values.append(int.from_bytes(blob[pos:pos + length], "big"))
        pos += length
    n, e, p, q = values
    if p * q != n or n.bit_length() != bits:
        raise KeyFormatError("RSA blob primes do not match the modulus")
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                     rsa.RSAPublicNumbers(e, n))
    # The blob is the device's own (from its state file or an authenticated masked blob) and its
    # primes were checked against n above, so OpenSSL's costly key validation (~50 ms for RSA-2048)
    # is skipped; keys from outside (RsaUnwrap) are validated by load_external_private.
    return numbers.private_key(unsafe_skip_rsa_key_validation=True)


def spki(key: PrivateKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def expected_length(kind: KeyType) -> int | None:
    """The exact serialized length of ``kind``, or None where it depends on the key (RSA, VarHmac)."""
    family = KINDS[kind].family
    if family is Family.ECC:
        return ECC_PKCS8_LENGTHS[kind]
    if family is Family.RSA:
        return None
    if family is Family.BULK:
        return 32
    if kind in VAR_HMAC_LENGTHS:
        return None
    return {Family.SECRET: (KINDS[kind].bits + 7) // 8, Family.MLDSA: 32, Family.MLKEM: 64}.get(
        family, KINDS[kind].size)
