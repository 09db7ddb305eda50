"""PUF quality over a simulated fleet: uniqueness, reliability, uniformity (bias) and bit aliasing.

Read-outs here use the simulation noise stream (``kernels.fill_noise``) instead of the health-tested
system noise, so 1,000 devices x 100 reads take seconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np

from pyhsm.backend.rot import extractor, kernels
from pyhsm.backend.rot.silicon import Conditions, SiliconProfile, deterministic_seed, manufacture


@dataclass(frozen=True)
class PufStats:
    devices: int
    reads: int
    cells: int
    inter_mean: float          # uniqueness: mean fractional Hamming distance between devices (ideal 0.5)
    inter_std: float
    intra_mean: float          # mean fractional distance of a read to the device's first read
    intra_max: float
    uniformity_mean: float     # fraction of ones in a read (ideal 0.5)
    uniformity_min: float
    uniformity_max: float
    aliasing_min_entropy: float  # mean per-cell min-entropy across devices (sampling-limited estimate)
    key_failure_bound: float   # union bound on UDS reconstruction failure at intra_mean

    @property
    def reliability(self) -> float:
        return 1.0 - self.intra_mean


def fleet(count: int, seed: int = 0, *, cells: int = 8192, nominal_ber: float = 0.10,
          **knobs: float) -> list[SiliconProfile]:
    """``count`` silicon profiles with independent seeds (noise spread calibrated once for all);
    ``cells``, ``nominal_ber`` and ``knobs`` as for ``manufacture``."""
    base = manufacture("fleet-0", seed=deterministic_seed("fleet-0"), cells=cells, nominal_ber=nominal_ber,
                       **knobs)

    def member(i: int) -> SiliconProfile:
        digest = hashlib.sha256(f"azihsm-fleet-{seed}-{i}".encode()).hexdigest()
        return dataclasses.replace(base, serial=f"fleet-{i}", seed=digest)
    return [member(i) for i in range(count)]


def evaluate(profiles: list[SiliconProfile], reads: int, conditions: Conditions = Conditions(),
             seed: int = 1) -> PufStats:
    if reads < 2 or len(profiles) < 2:
        raise ValueError("need at least two devices and two reads")
    cells = profiles[0].cells
    first = np.empty((len(profiles), cells), dtype=np.uint8)
    intra = np.empty((len(profiles), reads - 1), dtype=np.float64)
    for d, profile in enumerate(profiles):
        first[d], distances = kernels.intra_distances(profile.thresholds(conditions),
                                                      np.uint64(seed * 1_000_003 + d), reads)
        intra[d] = distances / cells
    ones = first.sum(axis=1, dtype=np.float64)
    as_float = first.astype(np.float32)
    overlap = as_float @ as_float.T
    inter = (ones[:, None] + ones[None, :] - 2 * overlap) / cells
    pairs = inter[np.triu_indices(len(profiles), k=1)]
    per_cell_ones = first.mean(axis=0)
    min_entropy = -np.log2(np.maximum(per_cell_ones, 1 - per_cell_ones))
    intra_mean = float(intra.mean())
    return PufStats(
        devices=len(profiles), reads=reads, cells=cells,
        inter_mean=float(pairs.mean()), inter_std=float(pairs.std()),
        intra_mean=intra_mean, intra_max=float(intra.max()),
        uniformity_mean=float(ones.mean() / cells), uniformity_min=float(ones.min() / cells),
        uniformity_max=float(ones.max() / cells), aliasing_min_entropy=float(min_entropy.mean()),
        key_failure_bound=extractor.key_failure_bound(intra_mean, cells // kernels.RM_N))
