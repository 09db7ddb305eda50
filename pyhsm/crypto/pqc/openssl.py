"""The default provider: pyca/cryptography (OpenSSL 3.5's ML-DSA and ML-KEM)."""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

from pyhsm.crypto.pqc.params import MlDsaParams, MlKemParams
from pyhsm.crypto.pqc.provider import InvalidInput

_DSA: dict[int, tuple[Any, Any]] = {
    65: (mldsa.MLDSA65PrivateKey, mldsa.MLDSA65PublicKey),
    87: (mldsa.MLDSA87PrivateKey, mldsa.MLDSA87PublicKey),
}
_KEM: dict[int, tuple[Any, Any]] = {
    768: (mlkem.MLKEM768PrivateKey, mlkem.MLKEM768PublicKey),
    1024: (mlkem.MLKEM1024PrivateKey, mlkem.MLKEM1024PublicKey),
}


class CryptographyProvider:
    name = "cryptography"

    def __init__(self) -> None:
        self._keys: dict[tuple[int, bytes], Any] = {}   # parsed private keys by (params, seed)

    def _private(self, table: dict[int, tuple[Any, Any]], number: int, seed: bytes) -> Any:
        key = self._keys.get((number, seed))
        if key is None:
            try:
                key = table[number][0].from_seed_bytes(seed)
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
            if len(self._keys) >= 256:
                self._keys.clear()
            self._keys[(number, seed)] = key
        return key

    def mldsa_public(self, params: MlDsaParams, seed: bytes) -> bytes:
        return self._private(_DSA, params.number, seed).public_key().public_bytes_raw()

    def mldsa_sign(self, params: MlDsaParams, seed: bytes, message: bytes, context: bytes) -> bytes:
        return self._private(_DSA, params.number, seed).sign(message, context)

    def mldsa_verify(self, params: MlDsaParams, public: bytes, message: bytes, signature: bytes,
                     context: bytes) -> bool:
        try:
            _DSA[params.number][1].from_public_bytes(public).verify(signature, message, context)
        except (InvalidSignature, ValueError):
            return False
        return True

    def mlkem_public(self, params: MlKemParams, seed: bytes) -> bytes:
        return self._private(_KEM, params.number, seed).public_key().public_bytes_raw()

    def mlkem_encapsulate(self, params: MlKemParams, public: bytes) -> tuple[bytes, bytes]:
        try:
            key = _KEM[params.number][1].from_public_bytes(public)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        secret, ciphertext = key.encapsulate()
        return secret, ciphertext

    def mlkem_decapsulate(self, params: MlKemParams, seed: bytes, ciphertext: bytes) -> bytes:
        if len(ciphertext) != params.ciphertext_len:
            raise InvalidInput(f"ML-KEM-{params.number} ciphertext must be {params.ciphertext_len} bytes")
        return self._private(_KEM, params.number, seed).decapsulate(ciphertext)
