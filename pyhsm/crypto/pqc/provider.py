"""The interface every post-quantum provider implements."""

from __future__ import annotations

from typing import Protocol

from pyhsm.crypto.pqc.params import MlDsaParams, MlKemParams


class ProviderUnavailable(RuntimeError):
    """The selected provider's library is not installed or lacks a needed function."""


class InvalidInput(ValueError):
    """A public key, ciphertext or seed that the algorithm rejects."""


class Provider(Protocol):
    name: str

    def mldsa_public(self, params: MlDsaParams, seed: bytes) -> bytes:
        """The public key of the key pair KeyGen_internal(seed)."""
        ...

    def mldsa_sign(self, params: MlDsaParams, seed: bytes, message: bytes, context: bytes) -> bytes:
        """ML-DSA.Sign (hedged) of ``message`` with ``context`` (at most 255 bytes)."""
        ...

    def mldsa_verify(self, params: MlDsaParams, public: bytes, message: bytes, signature: bytes,
                     context: bytes) -> bool:
        ...

    def mlkem_public(self, params: MlKemParams, seed: bytes) -> bytes:
        """The encapsulation key of KeyGen_internal(d, z), seed = d || z."""
        ...

    def mlkem_encapsulate(self, params: MlKemParams, public: bytes) -> tuple[bytes, bytes]:
        """(shared secret, ciphertext); raises ``InvalidInput`` for a malformed key."""
        ...

    def mlkem_decapsulate(self, params: MlKemParams, seed: bytes, ciphertext: bytes) -> bytes:
        """The shared secret (implicit rejection); raises ``InvalidInput`` for a wrong-length ciphertext."""
        ...
