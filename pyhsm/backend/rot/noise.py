"""The PUF's noise source and its continuous SP 800-90B health tests.

The physical noise of SRAM power-up is emulated by host entropy (``os.urandom``): one uint32 sample per
cell and read-out. The raw samples are health-tested as a stream of 8-bit samples before any read-out is
used. Assessed min-entropy H = 4 bits per byte (conservative for a host CSPRNG), false-alarm rate
alpha = 2^-40 per sample, so a correct source practically never trips, while a stuck source trips the
repetition count test and a biased one the adaptive proportion test.
"""

from __future__ import annotations

import math
import os
from typing import Callable

import numpy as np

from pyhsm.backend.rot import kernels
from pyhsm.protocol.dice.errors import RootOfTrustFailure

ENTROPY_BITS_PER_SAMPLE = 4
ALPHA_LOG2 = -40
APT_WINDOW = 512                       # SP 800-90B 4.4.2, non-binary samples

NoiseSource = Callable[[int], bytes]   # n -> n raw bytes


def rct_cutoff(entropy_bits: float = ENTROPY_BITS_PER_SAMPLE, alpha_log2: int = ALPHA_LOG2) -> int:
    """SP 800-90B 4.4.1: C = 1 + ceil(-log2(alpha) / H)."""
    return 1 + math.ceil(-alpha_log2 / entropy_bits)


def apt_cutoff(entropy_bits: float = ENTROPY_BITS_PER_SAMPLE, alpha_log2: int = ALPHA_LOG2,
               window: int = APT_WINDOW) -> int:
    """SP 800-90B 4.4.2: C = 1 + CRITBINOM(W, 2^-H, 1 - alpha), the smallest C with P[Bin(W, p) >= C] <= alpha."""
    p = 2.0 ** -entropy_bits
    alpha = 2.0 ** alpha_log2

    def pmf(k: int) -> float:
        log = (math.lgamma(window + 1) - math.lgamma(k + 1) - math.lgamma(window - k + 1)
               + k * math.log(p) + ((window - k) * math.log1p(-p) if p < 1 else 0.0))
        return math.exp(log)
    tail = 0.0
    for c in range(window, -1, -1):      # tail = P[Bin >= c], growing as c falls
        tail += pmf(c)
        if tail > alpha:
            return c + 1
    return 0


RCT_CUTOFF = rct_cutoff()
APT_CUTOFF = apt_cutoff()


def health_check(samples: np.ndarray) -> None:
    """Run both continuous tests on uint8 samples; RootOfTrustFailure names the one that tripped."""
    at = kernels.repetition_count_test(samples, RCT_CUTOFF)
    if at >= 0:
        raise RootOfTrustFailure(f"noise source health test: repetition count test tripped at sample {at} "
                                 f"(run of {RCT_CUTOFF} identical samples)")
    at = kernels.adaptive_proportion_test(samples, APT_WINDOW, APT_CUTOFF)
    if at >= 0:
        raise RootOfTrustFailure(f"noise source health test: adaptive proportion test tripped at sample {at} "
                                 f"({APT_CUTOFF} of {APT_WINDOW} samples equal)")


def read_noise(source: NoiseSource, cells: int) -> np.ndarray:
    """One health-tested uint32 noise sample per cell."""
    raw = source(4 * cells)
    if len(raw) != 4 * cells:
        raise RootOfTrustFailure(f"noise source returned {len(raw)} bytes, expected {4 * cells}")
    samples = np.frombuffer(raw, dtype=np.uint8)
    health_check(samples)
    return samples.view("<u4")


system_noise: NoiseSource = os.urandom
