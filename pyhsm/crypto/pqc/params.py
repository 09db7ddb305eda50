"""The ML-DSA (FIPS 204) and ML-KEM (FIPS 203) parameter sets the HSM offers, with their sizes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MlDsaParams:
    number: int          # 65 or 87: the parameter set's name and the DDI ``params`` value
    public_len: int
    signature_len: int
    expanded_len: int    # the expanded private key (what the key table is charged)
    seed_len: int = 32


@dataclass(frozen=True)
class MlKemParams:
    number: int          # 768 or 1024
    public_len: int
    ciphertext_len: int
    expanded_len: int
    seed_len: int = 64
    secret_len: int = 32


MLDSA: dict[int, MlDsaParams] = {p.number: p for p in (
    MlDsaParams(65, 1952, 3309, 4032),
    MlDsaParams(87, 2592, 4627, 4896),
)}
MLKEM: dict[int, MlKemParams] = {p.number: p for p in (
    MlKemParams(768, 1184, 1088, 2400),
    MlKemParams(1024, 1568, 1568, 3168),
)}
