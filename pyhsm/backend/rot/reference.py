"""Plain NumPy reference versions of the kernels in ``pyhsm.backend.rot.kernels``, written for clarity.

The decoder here is the definition of maximum-likelihood decoding (correlate with all 256 code words of
the explicit codebook, take the first best), not the fast transform, so agreement is a real cross-check.
"""

from __future__ import annotations

import math

import numpy as np

RM_M = 7
RM_N = 1 << RM_M


def rm_encode(messages: np.ndarray) -> np.ndarray:
    """Code words (B, 128): bit x = a0 XOR parity(u AND x) for message a0 | u << 1."""
    messages = np.asarray(messages, dtype=np.uint8)
    a0 = (messages & 1)[:, None]
    u = (messages >> 1)[:, None].astype(np.int64)
    x = np.arange(RM_N, dtype=np.int64)[None, :]
    bits = np.unpackbits((u & x).astype(np.uint8)[..., None], axis=-1).sum(axis=-1) & 1
    return (a0 ^ bits).astype(np.uint8)


_CODEBOOK_PM1 = 1 - 2 * rm_encode(np.arange(256, dtype=np.uint8)).astype(np.int32)  # (256, 128) of +-1


def rm_decode(words: np.ndarray) -> np.ndarray:
    """ML decoding by correlation with every code word; ties go to the smallest message index."""
    received = 1 - 2 * np.asarray(words, dtype=np.int32)
    correlation = received @ _CODEBOOK_PM1.T
    return np.argmax(correlation, axis=1).astype(np.uint8)


def puf_read(thresholds: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return (np.asarray(noise, dtype=np.uint32) < np.asarray(thresholds, dtype=np.uint32)).astype(np.uint8)


def repetition_count_test(samples: np.ndarray, cutoff: int) -> int:
    samples = np.asarray(samples)
    if samples.size == 0:
        return -1
    starts = np.flatnonzero(np.concatenate(([True], samples[1:] != samples[:-1])))
    lengths = np.diff(np.concatenate((starts, [samples.size])))
    long_runs = np.flatnonzero(lengths >= cutoff)
    return -1 if long_runs.size == 0 else int(starts[long_runs[0]] + cutoff - 1)


def adaptive_proportion_test(samples: np.ndarray, window: int, cutoff: int) -> int:
    samples = np.asarray(samples)
    n_windows = samples.size // window
    windows = samples[:n_windows * window].reshape(n_windows, window)
    counts = np.cumsum(windows == windows[:, :1], axis=1)
    hits = counts >= cutoff
    failing = np.flatnonzero(hits.any(axis=1))
    if failing.size == 0:
        return -1
    w = failing[0]
    return int(w * window + np.argmax(hits[w]))


_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def fill_noise(seed: int, stream: int, n: int) -> np.ndarray:
    words = (n + 1) // 2
    with np.errstate(over="ignore"):
        base = np.uint64(seed) + np.uint64(stream) * np.uint64(words) * _GAMMA
        z = base + np.arange(1, words + 1, dtype=np.uint64) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    pairs = np.stack([(z & np.uint64(0xFFFFFFFF)), z >> np.uint64(32)], axis=1).astype(np.uint32)
    return pairs.reshape(-1)[:n]


_erf = np.frompyfunc(math.erf, 1, 1)


def cell_thresholds(bias: np.ndarray, drift: np.ndarray, drift_scale: float, sigma: float) -> np.ndarray:
    p = 0.5 * (1.0 + np.asarray(_erf((bias + drift_scale * drift) / sigma / math.sqrt(2.0))).astype(np.float64))
    return np.minimum(np.floor(p * 4294967296.0), 4294967295.0).astype(np.uint32)


def count_reconstruction_failures(thresholds: np.ndarray, offset: np.ndarray, messages: np.ndarray,
                                  seed: int, trials: int) -> np.ndarray:
    out = np.empty(trials, dtype=np.int32)
    for t in range(trials):
        word = puf_read(thresholds, fill_noise(seed, t, thresholds.size)) ^ offset
        out[t] = np.count_nonzero(rm_decode(word.reshape(-1, RM_N)) != messages)
    return out


def intra_distances(thresholds: np.ndarray, seed: int, reads: int) -> tuple[np.ndarray, np.ndarray]:
    reads_ = [puf_read(thresholds, fill_noise(seed, r, thresholds.size)) for r in range(reads)]
    return reads_[0], np.array([np.count_nonzero(r != reads_[0]) for r in reads_[1:]], dtype=np.int32)
