"""Numba kernels of the root of trust: PUF read-out, RM(1,7) encode/decode, SP 800-90B health tests.

Every kernel has a plain NumPy twin in ``pyhsm.backend.rot.reference``; the two agree bit for bit (tests check).
Compiled code is cached on disk (``cache=True``) where numba is told before this module is imported:
entry points call ``pyhsm.paths.use_numba_cache`` (``build/numba-cache`` unless ``NUMBA_CACHE_DIR``
says otherwise).

Code conventions: a PUF response or code word is a uint8 array of 0/1 bits. An RM(1,7) message is one
byte ``m = a0 | u << 1``: code word bit ``x`` (0..127) is ``a0 XOR parity(u AND x)``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

RM_M = 7
RM_N = 1 << RM_M          # code word length
RM_K = RM_M + 1           # message bits per block

_SPLITMIX_GAMMA = np.uint64(0x9E3779B97F4A7C15)


@numba.njit(cache=True, inline="always")
def _splitmix64(state: np.uint64) -> np.uint64:
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True)
def puf_read(thresholds: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Power-up values of the SRAM cells: bit i is 1 when noise sample i (uint32) is below threshold i."""
    out = np.empty(thresholds.shape[0], dtype=np.uint8)
    for i in range(thresholds.shape[0]):
        out[i] = 1 if noise[i] < thresholds[i] else 0
    return out


@numba.njit(cache=True, inline="always")
def _parity7(v: int) -> int:
    v ^= v >> 4
    v ^= v >> 2
    v ^= v >> 1
    return v & 1


@numba.njit(cache=True)
def rm_encode(messages: np.ndarray) -> np.ndarray:
    """Code words (B, 128) of the RM(1,7) messages (B,) uint8."""
    out = np.empty((messages.shape[0], RM_N), dtype=np.uint8)
    for b in range(messages.shape[0]):
        a0 = messages[b] & 1
        u = messages[b] >> 1
        for x in range(RM_N):
            out[b, x] = a0 ^ _parity7(u & x)
    return out


@numba.njit(cache=True, inline="always")
def _decode_block(word: np.ndarray, f: np.ndarray) -> np.uint8:
    """Maximum-likelihood RM(1,7) decoding of one received word by a fast Walsh-Hadamard transform.

    Ties go to the smallest linear part ``u`` (the same rule as the reference's first argmax).
    """
    for x in range(RM_N):
        f[x] = 1 - 2 * np.int16(word[x])
    h = 1
    while h < RM_N:
        for i in range(0, RM_N, 2 * h):
            for j in range(i, i + h):
                a = f[j]
                b = f[j + h]
                f[j] = a + b
                f[j + h] = a - b
        h *= 2
    best_u = 0
    best = -1
    for u in range(RM_N):
        v = f[u] if f[u] >= 0 else -f[u]
        if v > best:
            best = v
            best_u = u
    return np.uint8((best_u << 1) | (1 if f[best_u] < 0 else 0))


@numba.njit(cache=True)
def rm_decode(words: np.ndarray) -> np.ndarray:
    """ML-decoded messages (B,) uint8 of received words (B, 128) uint8."""
    out = np.empty(words.shape[0], dtype=np.uint8)
    f = np.empty(RM_N, dtype=np.int16)
    for b in range(words.shape[0]):
        out[b] = _decode_block(words[b], f)
    return out


@numba.njit(cache=True)
def repetition_count_test(samples: np.ndarray, cutoff: int) -> int:
    """SP 800-90B 4.4.1: index of the sample at which a run of identical samples reaches ``cutoff``, or -1."""
    if samples.shape[0] == 0:
        return -1
    run = 1
    for i in range(1, samples.shape[0]):
        if samples[i] == samples[i - 1]:
            run += 1
            if run >= cutoff:
                return i
        else:
            run = 1
    return -1


@numba.njit(cache=True)
def adaptive_proportion_test(samples: np.ndarray, window: int, cutoff: int) -> int:
    """SP 800-90B 4.4.2 over consecutive complete windows: index of the sample at which the count of a
    window's first value reaches ``cutoff``, or -1."""
    for start in range(0, samples.shape[0] - window + 1, window):
        first = samples[start]
        count = 0
        for i in range(start, start + window):
            if samples[i] == first:
                count += 1
                if count >= cutoff:
                    return i
    return -1


@numba.njit(cache=True)
def fill_noise(seed: np.uint64, stream: int, out: np.ndarray) -> None:
    """Simulation noise: uint32 samples of splitmix64 stream ``stream`` (two samples per output word)."""
    words = (out.shape[0] + 1) // 2
    base = np.uint64(seed) + np.uint64(stream) * np.uint64(words) * _SPLITMIX_GAMMA
    for i in range(words):
        r = _splitmix64(base + np.uint64(i + 1) * _SPLITMIX_GAMMA)
        out[2 * i] = np.uint32(r & np.uint64(0xFFFFFFFF))
        if 2 * i + 1 < out.shape[0]:
            out[2 * i + 1] = np.uint32(r >> np.uint64(32))


@numba.njit(cache=True)
def cell_thresholds(bias: np.ndarray, drift: np.ndarray, drift_scale: float, sigma: float) -> np.ndarray:
    """uint32 read-out thresholds floor(2^32 * Phi((bias + drift_scale * drift) / sigma)), clipped."""
    out = np.empty(bias.shape[0], dtype=np.uint32)
    for i in range(bias.shape[0]):
        p = 0.5 * (1.0 + math.erf((bias[i] + drift_scale * drift[i]) / sigma / math.sqrt(2.0)))
        out[i] = np.uint32(min(math.floor(p * 4294967296.0), 4294967295.0))
    return out


@numba.njit(cache=True, parallel=True)
def count_reconstruction_failures(thresholds: np.ndarray, offset: np.ndarray, messages: np.ndarray,
                                  seed: np.uint64, trials: int) -> np.ndarray:
    """Simulated power-ons: trial t reads the PUF with noise stream t, adds the helper offset and decodes
    every block. Returns, per trial, how many blocks decoded to a message other than the enrolled one."""
    n_cells = thresholds.shape[0]
    failures = np.zeros(trials, dtype=np.int32)
    chunks = min(trials, 256)
    for chunk in numba.prange(chunks):
        f = np.empty(RM_N, dtype=np.int16)
        noise = np.empty(n_cells, dtype=np.uint32)
        word = np.empty(n_cells, dtype=np.uint8)
        for t in range(chunk * trials // chunks, (chunk + 1) * trials // chunks):
            fill_noise(seed, t, noise)
            for c in range(n_cells):
                word[c] = (np.uint8(1) if noise[c] < thresholds[c] else np.uint8(0)) ^ offset[c]
            bad = 0
            for b in range(messages.shape[0]):
                if _decode_block(word[b * RM_N:(b + 1) * RM_N], f) != messages[b]:
                    bad += 1
            failures[t] = bad
    return failures


@numba.njit(cache=True, parallel=True)
def intra_distances(thresholds: np.ndarray, seed: np.uint64, reads: int) -> tuple[np.ndarray, np.ndarray]:
    """The first of ``reads`` simulated read-outs (noise streams 0..reads-1) and the Hamming distance of
    each later read to it."""
    n_cells = thresholds.shape[0]
    noise = np.empty(n_cells, dtype=np.uint32)
    fill_noise(seed, 0, noise)
    first = puf_read(thresholds, noise)
    distances = np.zeros(reads - 1, dtype=np.int32)
    for r in numba.prange(1, reads):
        local = np.empty(n_cells, dtype=np.uint32)
        fill_noise(seed, r, local)
        d = 0
        for i in range(n_cells):
            bit = 1 if local[i] < thresholds[i] else 0
            d += bit ^ first[i]
        distances[r - 1] = d
    return first, distances


def warm_up() -> None:
    """Load (or compile) every kernel a power-on uses, so the first power-on does not pay for it."""
    samples = np.frombuffer(bytes(range(256)) * 2, dtype=np.uint8)   # read-only, like real noise
    puf_read(cell_thresholds(np.zeros(RM_N), np.zeros(RM_N), 0.0, 1.0), samples.view("<u4"))
    rm_decode(rm_encode(np.zeros(1, dtype=np.uint8)))
    repetition_count_test(samples, 2)
    adaptive_proportion_test(samples, 8, 8)
