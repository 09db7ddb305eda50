"""Post-quantum primitives behind one small interface (``Provider``), so the HSM does not care which
library computes them: ``cryptography`` (OpenSSL) by default, ``liboqs-python`` when selected.

Private keys are always handled as their FIPS seeds (ML-DSA: 32-byte xi, ML-KEM: 64-byte d||z); public
keys, signatures and ciphertexts are the raw FIPS 203/204 encodings.
"""

from __future__ import annotations

import os

from pyhsm.crypto.pqc.params import MLDSA, MLKEM, MlDsaParams, MlKemParams
from pyhsm.crypto.pqc.provider import Provider, ProviderUnavailable

__all__ = ["MLDSA", "MLKEM", "MlDsaParams", "MlKemParams", "Provider", "ProviderUnavailable", "default_provider"]

_ENV = "PYHSM_PQC_PROVIDER"


def default_provider() -> Provider:
    """The provider named by $PYHSM_PQC_PROVIDER ("cryptography", the default, or "oqs")."""
    name = os.environ.get(_ENV, "cryptography")
    if name == "cryptography":
        from pyhsm.crypto.pqc.openssl import CryptographyProvider
        return CryptographyProvider()
    if name == "oqs":
        from pyhsm.crypto.pqc.oqs import OqsProvider
        return OqsProvider()
    raise ProviderUnavailable(f"{_ENV}={name!r}: unknown provider (use 'cryptography' or 'oqs')")
