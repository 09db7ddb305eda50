"""Credential encryption (docs/ddi.md, "Credential encryption"), both ends: the host seals, the device opens.

Z = ECDH(P-384) X coordinate; OKM = HKDF-SHA-384(Z, no salt, info = nonce, 80 bytes); AES key = OKM[:32],
MAC key = OKM[32:]. The pieces (ID, PIN[, seed]) are one AES-256-CBC stream without padding under
one IV; tag = HMAC-SHA-384(MAC key, ciphertexts || IV || nonce).
"""

from __future__ import annotations

import hmac as _hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pyhsm.crypto.kdf import hkdf
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import KeyType


def _keys(private: ec.EllipticCurvePrivateKey, peer: ec.EllipticCurvePublicKey, nonce: bytes) -> bytes:
    return hkdf(hashes.SHA384, private.exchange(ec.ECDH(), peer), None, nonce, 80)


def _mac(okm: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(okm[32:], hashes.SHA384())
    mac.update(data)
    return mac.finalize()


@dataclass(frozen=True)
class Sealed:
    """What the host sends: its ephemeral public key (SPKI), the ciphertext pieces, IV and tag."""

    client_public_der: bytes
    pieces: tuple[bytes, ...]
    iv: bytes
    tag: bytes


def seal(device_public_der: bytes, nonce: bytes, pieces: list[bytes]) -> Sealed:
    """Host side: encrypt ``pieces`` (each a multiple of 16 bytes) for the device key."""
    device = serialization.load_der_public_key(device_public_der)
    ephemeral = ec.generate_private_key(ec.SECP384R1())
    okm = _keys(ephemeral, device, nonce)  # type: ignore[arg-type]
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(okm[:32]), modes.CBC(iv)).encryptor()
    cipher = [encryptor.update(p) for p in pieces]
    encryptor.finalize()
    tag = _mac(okm, b"".join(cipher) + iv + nonce)
    client = ephemeral.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    return Sealed(client, tuple(cipher), iv, tag)


def parse_client_key(der: bytes, key_kind: int) -> ec.EllipticCurvePublicKey:
    """The host's P-384 public key; KeyDecodeFailed / DerAndKeyTypeMismatch on a bad one."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, TypeError):
        raise DdiFailure(DdiStatus.KeyDecodeFailed, "client public key is not SPKI DER") from None
    if (key_kind != KeyType.Ecc384Public or not isinstance(key, ec.EllipticCurvePublicKey)
            or not isinstance(key.curve, ec.SECP384R1)):
        raise DdiFailure(DdiStatus.DerAndKeyTypeMismatch, "client key must be P-384 (Ecc384Public)")
    return key


def open_sealed(device: ec.EllipticCurvePrivateKey, current_nonce: bytes, client: ec.EllipticCurvePublicKey,
                pieces: list[bytes], iv: bytes, nonce: bytes, tag: bytes) -> list[bytes]:
    """Device side: check the nonce and tag and decrypt. The caller must already have validated
    the piece lengths and must replace the nonce as soon as this returns (docs/ddi.md, "Sessions, access and the nonce")."""
    if not _hmac.compare_digest(nonce, current_nonce):
        raise DdiFailure(DdiStatus.NonceMismatch, "stale nonce")
    okm = _keys(device, client, nonce)
    if not _hmac.compare_digest(_mac(okm, b"".join(pieces) + iv + nonce), tag):
        raise DdiFailure(DdiStatus.PinDecryptionFailed, "credential tag mismatch")
    decryptor = Cipher(algorithms.AES(okm[:32]), modes.CBC(iv)).decryptor()
    return [decryptor.update(p) for p in pieces]
