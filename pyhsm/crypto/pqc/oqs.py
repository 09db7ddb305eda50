"""The optional provider: liboqs through liboqs-python (``import oqs``; needs the liboqs C library).

Seeded key generation uses liboqs' derandomized key generation (``generate_keypair_seed``), which
liboqs-python offers from 0.14 on; older bindings raise ``ProviderUnavailable``.
"""

from __future__ import annotations

from typing import Any

from pyhsm.crypto.pqc.params import MlDsaParams, MlKemParams
from pyhsm.crypto.pqc.provider import InvalidInput, ProviderUnavailable


def _oqs() -> Any:
    try:
        import oqs  # type: ignore[import-not-found]
    except (ImportError, SystemExit, RuntimeError) as exc:   # liboqs-python exits when liboqs is missing
        raise ProviderUnavailable(f"liboqs-python with the liboqs C library is not installed ({exc})") from None
    return oqs


class OqsProvider:
    name = "oqs"

    def __init__(self) -> None:
        self._oqs = _oqs()

    def _keypair(self, mechanism: Any, seed: bytes) -> tuple[bytes, bytes]:
        if not hasattr(mechanism, "generate_keypair_seed"):
            raise ProviderUnavailable("this liboqs-python has no seeded key generation")
        public = mechanism.generate_keypair_seed(seed)
        return public, mechanism.export_secret_key()

    def mldsa_public(self, params: MlDsaParams, seed: bytes) -> bytes:
        with self._oqs.Signature(f"ML-DSA-{params.number}") as sig:
            return self._keypair(sig, seed)[0]

    def mldsa_sign(self, params: MlDsaParams, seed: bytes, message: bytes, context: bytes) -> bytes:
        with self._oqs.Signature(f"ML-DSA-{params.number}") as sig:
            self._keypair(sig, seed)
            return bytes(sig.sign_with_ctx_str(message, context))

    def mldsa_verify(self, params: MlDsaParams, public: bytes, message: bytes, signature: bytes,
                     context: bytes) -> bool:
        with self._oqs.Signature(f"ML-DSA-{params.number}") as sig:
            return bool(sig.verify_with_ctx_str(message, signature, context, public))

    def mlkem_public(self, params: MlKemParams, seed: bytes) -> bytes:
        with self._oqs.KeyEncapsulation(f"ML-KEM-{params.number}") as kem:
            return self._keypair(kem, seed)[0]

    def mlkem_encapsulate(self, params: MlKemParams, public: bytes) -> tuple[bytes, bytes]:
        if len(public) != params.public_len:
            raise InvalidInput(f"ML-KEM-{params.number} public key must be {params.public_len} bytes")
        with self._oqs.KeyEncapsulation(f"ML-KEM-{params.number}") as kem:
            ciphertext, secret = kem.encap_secret(public)
            return bytes(secret), bytes(ciphertext)

    def mlkem_decapsulate(self, params: MlKemParams, seed: bytes, ciphertext: bytes) -> bytes:
        if len(ciphertext) != params.ciphertext_len:
            raise InvalidInput(f"ML-KEM-{params.number} ciphertext must be {params.ciphertext_len} bytes")
        with self._oqs.KeyEncapsulation(f"ML-KEM-{params.number}") as kem:
            self._keypair(kem, seed)
            return bytes(kem.decap_secret(ciphertext))
