"""The provider layer: the cryptography provider against the independent pure-Python implementations,
and the liboqs provider where liboqs is installed (skipped, naming what is missing, where it is not)."""

from __future__ import annotations

import os

import pytest
from dilithium_py.ml_dsa import ML_DSA_65, ML_DSA_87
from kyber_py.ml_kem import ML_KEM_768, ML_KEM_1024

from pyhsm.crypto.pqc import MLDSA, MLKEM, default_provider
from pyhsm.crypto.pqc.openssl import CryptographyProvider
from pyhsm.crypto.pqc.provider import InvalidInput, ProviderUnavailable


def _providers() -> list[object]:
    found: list[object] = [CryptographyProvider()]
    try:
        from pyhsm.crypto.pqc.oqs import OqsProvider
        found.append(OqsProvider())
    except ProviderUnavailable as exc:
        found.append(pytest.param(None, marks=pytest.mark.skip(reason=f"oqs provider: {exc}")))
    return found


@pytest.mark.parametrize("provider", _providers(), ids=["cryptography", "oqs"])
def test_provider_agrees_with_independent_implementations(provider) -> None:
    for number, independent in ((65, ML_DSA_65), (87, ML_DSA_87)):
        seed = os.urandom(32)
        public = provider.mldsa_public(MLDSA[number], seed)
        assert public == independent.key_derive(seed)[0]
        sig = provider.mldsa_sign(MLDSA[number], seed, b"msg", b"ctx")
        assert independent.verify(public, b"msg", sig, ctx=b"ctx")
        assert provider.mldsa_verify(MLDSA[number], public, b"msg", sig, b"ctx")
        assert not provider.mldsa_verify(MLDSA[number], public, b"msg", sig, b"other ctx")
    for number, independent in ((768, ML_KEM_768), (1024, ML_KEM_1024)):
        seed = os.urandom(64)
        public = provider.mlkem_public(MLKEM[number], seed)
        ek, dk = independent.key_derive(seed)
        assert public == ek
        secret, ct = provider.mlkem_encapsulate(MLKEM[number], public)
        assert independent.decaps(dk, ct) == secret
        secret2, ct2 = independent.encaps(public)
        assert provider.mlkem_decapsulate(MLKEM[number], seed, ct2) == secret2
        with pytest.raises(InvalidInput):
            provider.mlkem_decapsulate(MLKEM[number], seed, ct2[:-1])
        with pytest.raises(InvalidInput):
            provider.mlkem_encapsulate(MLKEM[number], public[:-1])


def test_provider_selection(monkeypatch) -> None:
    monkeypatch.delenv("PYHSM_PQC_PROVIDER", raising=False)
    assert default_provider().name == "cryptography"
    monkeypatch.setenv("PYHSM_PQC_PROVIDER", "nonsense")
    with pytest.raises(ProviderUnavailable, match="unknown provider"):
        default_provider()
