"""Hybrid wrapping of a released secret to a recipient's ephemeral keys: ML-KEM-768 + ECDH P-384,
combined with HKDF-SHA-384, AES-256-GCM over the secret (docs/vendor-ops.md, "Hybrid wrapping").

``wrap`` runs in the HSM; ``Recipient`` (key pair + ``unwrap``) runs in the guest.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from pyhsm.crypto.pqc import MLKEM, Provider, default_provider
from pyhsm.protocol.cvm.owner import load_p384_public, public_der

KEM = MLKEM[768]
INFO = b"azihsm-cvm-wrap-v1\0"
RELEASE_CONTEXT = b"azihsm-cvm/release/"
UNSEAL_CONTEXT = b"azihsm-cvm/unseal"


class WrapError(ValueError):
    """A recipient key or wrapped blob that cannot be used."""


@dataclass(frozen=True)
class Wrapped:
    kem_ct: bytes
    ecdh_pub: bytes       # the wrapper's ephemeral P-384 key, SPKI DER
    ciphertext: bytes     # AES-256-GCM ciphertext || tag


def _length_prefixed(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">H", len(p)) + p for p in parts)


def _key_and_iv(ss_kem: bytes, ss_ecdh: bytes, kem_ct: bytes, wrapper_pub: bytes, kem_pub: bytes,
                ecdh_pub: bytes, context: bytes) -> tuple[bytes, bytes]:
    salt = hashlib.sha384(_length_prefixed(kem_ct, wrapper_pub, kem_pub, ecdh_pub)).digest()
    okm = HKDF(hashes.SHA384(), 44, salt, INFO + context).derive(ss_kem + ss_ecdh)
    return okm[:32], okm[32:]


def wrap(secret: bytes, kem_pub: bytes, ecdh_pub: bytes, context: bytes,
         provider: Provider | None = None) -> Wrapped:
    """Wrap ``secret`` to the recipient (ML-KEM-768 key, P-384 SPKI DER); raises ``WrapError``."""
    provider = provider or default_provider()
    if len(kem_pub) != KEM.public_len:
        raise WrapError(f"recipient ML-KEM-768 key must be {KEM.public_len} bytes")
    try:
        peer = load_p384_public(ecdh_pub)
        ss_kem, kem_ct = provider.mlkem_encapsulate(KEM, kem_pub)
    except ValueError as exc:
        raise WrapError(f"recipient key rejected: {exc}") from None
    ephemeral = ec.generate_private_key(ec.SECP384R1())
    wrapper_pub = public_der(ephemeral)
    key, iv = _key_and_iv(ss_kem, ephemeral.exchange(ec.ECDH(), peer), kem_ct, wrapper_pub, kem_pub, ecdh_pub,
                          context)
    return Wrapped(kem_ct, wrapper_pub, AESGCM(key).encrypt(iv, secret, context))


class Recipient:
    """An ephemeral recipient key pair (guest side); ``unwrap`` opens what ``wrap`` produced for it."""

    def __init__(self, provider: Provider | None = None) -> None:
        self._provider = provider or default_provider()
        self._kem_seed = os.urandom(KEM.seed_len)
        self._ecdh = ec.generate_private_key(ec.SECP384R1())
        self.kem_pub = self._provider.mlkem_public(KEM, self._kem_seed)
        self.ecdh_pub = public_der(self._ecdh)

    def unwrap(self, wrapped: Wrapped, context: bytes) -> bytes:
        """The secret; raises ``WrapError`` if the blob was not made for this recipient and context."""
        try:
            ss_kem = self._provider.mlkem_decapsulate(KEM, self._kem_seed, wrapped.kem_ct)
            ss_ecdh = self._ecdh.exchange(ec.ECDH(), load_p384_public(wrapped.ecdh_pub))
            key, iv = _key_and_iv(ss_kem, ss_ecdh, wrapped.kem_ct, wrapped.ecdh_pub, self.kem_pub,
                                  self.ecdh_pub, context)
            return AESGCM(key).decrypt(iv, wrapped.ciphertext, context)
        except Exception as exc:  # InvalidTag, bad point, bad length: all mean "not for us"
            raise WrapError(f"cannot unwrap: {type(exc).__name__}") from None
