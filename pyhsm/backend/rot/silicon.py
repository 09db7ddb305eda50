"""The virtual HSM's silicon: an SRAM PUF with per-cell bias and noise, created once at manufacture.

Cell model: cell i powers up to 1 when ``bias_i + drift_i * age_years + sigma_eff * Z > 0`` with Z standard
normal and fresh at every power-up. ``bias_i`` and ``drift_i`` are standard normal per cell (fixed by the
silicon seed), ``skew`` shifts every bias (a biased array), ``sigma`` is calibrated at manufacture so two
independent reads at reference conditions differ in ``nominal_ber`` of the cells, and
``sigma_eff = noise_scale * sigma * (1 + temperature_coeff * |T - 25 C|)``. A cell's power-up probability is
Phi((bias + drift * age) / sigma_eff); it is handed to the read-out kernel as a uint32 threshold.

The profile file stores only the seed and the parameters; the per-cell arrays are regenerated from the
seed. The seed is the chip's secret: random at manufacture, it exists only in the profile file
(``silicon.json``, the chip). ``deterministic_seed`` derives it from the serial instead, for reproducible
experiments only: anyone who knows the serial then knows the chip (docs/security.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyhsm.backend.privfile import write_atomic
from pyhsm.backend.rot import kernels

PROFILE_FORMAT = 1
REFERENCE_TEMPERATURE_C = 25.0


@dataclass(frozen=True)
class Conditions:
    """Operating conditions of one power-on."""
    temperature_c: float = REFERENCE_TEMPERATURE_C
    age_years: float = 0.0
    noise_scale: float = 1.0        # fault injection (e.g. a supply glitch): multiplies the noise spread


@dataclass(frozen=True)
class SiliconProfile:
    serial: str
    seed: str                       # hex
    cells: int = 8192
    nominal_ber: float = 0.10       # intra-device bit-error rate between two reads at reference conditions
    skew: float = 0.0               # mean bias of all cells, in units of the bias spread
    temperature_coeff: float = 0.005 # relative noise increase per degree C away from 25 C
    ageing_drift: float = 0.05      # bias drift per year, in units of the bias spread
    sigma: float = 0.0              # noise spread, calibrated from nominal_ber at manufacture

    def cell_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(bias, drift) per cell, regenerated from the seed."""
        rng = np.random.Generator(np.random.PCG64(int(self.seed, 16)))
        bias = rng.standard_normal(self.cells) + self.skew
        drift = rng.standard_normal(self.cells)
        return bias, drift

    def effective_sigma(self, conditions: Conditions) -> float:
        return conditions.noise_scale * self.sigma * (
            1.0 + self.temperature_coeff * abs(conditions.temperature_c - REFERENCE_TEMPERATURE_C))

    def thresholds(self, conditions: Conditions = Conditions()) -> np.ndarray:
        """uint32 read-out thresholds, 2^32 times each cell's probability of powering up to 1: a cell reads
        1 when its uint32 noise sample is below its threshold."""
        bias, drift = self.cell_arrays()
        return kernels.cell_thresholds(bias, drift, self.ageing_drift * conditions.age_years,
                                       self.effective_sigma(conditions))

    def save(self, path: Path) -> None:
        """Write the profile durably (0600, atomic: ``pyhsm.backend.privfile.write_atomic``)."""
        write_atomic(path, (json.dumps({"format": PROFILE_FORMAT, **dataclasses.asdict(self)}, indent=2)
                            + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> "SiliconProfile":
        data = json.loads(path.read_text())
        if data.pop("format", None) != PROFILE_FORMAT:
            raise ValueError(f"{path}: unknown silicon profile format")
        return cls(**data)


def deterministic_seed(serial: str) -> bytes:
    """INSECURE: a silicon seed anyone can compute from the serial (reproducible experiments only)."""
    return hashlib.sha256(b"azihsm-silicon-v1\0" + serial.encode()).digest()


def manufacture(serial: str, *, seed: bytes | None = None, cells: int = 8192,
                nominal_ber: float = 0.10, **knobs: float) -> SiliconProfile:
    """A new silicon profile; ``seed`` defaults to 32 fresh random bytes (a unique chip)."""
    if seed is None:
        seed = os.urandom(32)
    return SiliconProfile(serial=serial, seed=seed.hex(), cells=cells, nominal_ber=nominal_ber,
                          sigma=calibrate_sigma(nominal_ber, knobs.get("skew", 0.0)), **knobs)


_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.hermite_e.hermegauss(96)


def expected_ber(sigma: float, skew: float = 0.0) -> float:
    """Expected fraction of cells differing between two independent reads, for noise spread sigma."""
    p = _normal_cdf((_GAUSS_NODES + skew) / sigma)
    return float(np.sum(_GAUSS_WEIGHTS * 2 * p * (1 - p)) / math.sqrt(2 * math.pi))


def calibrate_sigma(nominal_ber: float, skew: float = 0.0) -> float:
    """The noise spread whose expected bit-error rate is ``nominal_ber`` (bisection; the rate grows with sigma)."""
    if not 0.0 < nominal_ber < 0.5:
        raise ValueError("nominal bit-error rate must be in (0, 0.5)")
    lo, hi = 1e-6, 1e3
    for _ in range(64):
        mid = math.sqrt(lo * hi)
        if expected_ber(mid, skew) < nominal_ber:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(z, dtype=np.float64) / math.sqrt(2.0)))
