"""The numba kernels agree bit for bit with the NumPy references."""

import numpy as np
import pytest

from pyhsm.backend.rot import kernels as K
from pyhsm.backend.rot import reference as R

RNG = np.random.default_rng(20261129)


def noisy_words(count: int, ber: float) -> tuple[np.ndarray, np.ndarray]:
    messages = RNG.integers(0, 256, count).astype(np.uint8)
    words = R.rm_encode(messages) ^ (RNG.random((count, 128)) < ber).astype(np.uint8)
    return messages, words


def test_encode_agrees_on_every_message():
    messages = np.arange(256, dtype=np.uint8)
    assert np.array_equal(K.rm_encode(messages), R.rm_encode(messages))


def test_code_has_minimum_distance_64():
    code = R.rm_encode(np.arange(256, dtype=np.uint8)).astype(np.int32)
    weights = code[1:].sum(axis=1)
    assert weights.min() == 64 and set(np.unique(weights)) == {64, 128}


@pytest.mark.parametrize("ber", [0.0, 0.1, 0.3, 0.5])
def test_decode_agrees(ber):
    _, words = noisy_words(5000, ber)
    assert np.array_equal(K.rm_decode(words), R.rm_decode(words))


def test_decode_agrees_on_ties():
    # half-way between two code words: weight-32 error inside a weight-64 code word's support
    messages = np.full(200, 0, dtype=np.uint8)
    words = R.rm_encode(messages)
    support = np.flatnonzero(R.rm_encode(np.array([2], dtype=np.uint8))[0])
    for w in words:
        w[RNG.choice(support, 32, replace=False)] ^= 1
    assert np.array_equal(K.rm_decode(words), R.rm_decode(words))


def test_decoder_corrects_every_pattern_of_31_errors():
    messages = RNG.integers(0, 256, 3000).astype(np.uint8)
    words = K.rm_encode(messages)
    for w in words:
        w[RNG.choice(128, 31, replace=False)] ^= 1
    assert np.array_equal(K.rm_decode(words), messages)


def test_puf_read_agrees():
    thresholds = RNG.integers(0, 2**32, 10000, dtype=np.uint64).astype(np.uint32)
    noise = RNG.integers(0, 2**32, 10000, dtype=np.uint64).astype(np.uint32)
    thresholds[:3] = [0, 2**32 - 1, 7]
    noise[:3] = [0, 2**32 - 1, 7]
    assert np.array_equal(K.puf_read(thresholds, noise), R.puf_read(thresholds, noise))


def test_health_tests_agree():
    for trial in range(300):
        samples = RNG.integers(0, 4 if trial % 2 else 256, 3000).astype(np.uint8)
        if trial % 3 == 0:
            start = RNG.integers(0, 2900)
            samples[start:start + RNG.integers(1, 30)] = 9
        for cutoff in (3, 6, 11):
            assert K.repetition_count_test(samples, cutoff) == R.repetition_count_test(samples, cutoff)
        for window, cutoff in ((64, 20), (512, 79), (512, 140)):
            assert (K.adaptive_proportion_test(samples, window, cutoff)
                    == R.adaptive_proportion_test(samples, window, cutoff))


def test_noise_stream_and_thresholds_agree():
    for n in (1, 2, 8191, 8192):
        out = np.empty(n, dtype=np.uint32)
        K.fill_noise(np.uint64(12345), 17, out)
        assert np.array_equal(out, R.fill_noise(12345, 17, n))
    bias, drift = RNG.standard_normal(8192) * 3, RNG.standard_normal(8192)
    assert np.array_equal(K.cell_thresholds(bias, drift, 0.3, 0.2), R.cell_thresholds(bias, drift, 0.3, 0.2))


def test_batched_simulation_kernels_agree():
    thresholds = R.cell_thresholds(RNG.standard_normal(1024), RNG.standard_normal(1024), 0.0, 0.5)
    offset = RNG.integers(0, 2, 1024).astype(np.uint8)
    messages = RNG.integers(0, 256, 8).astype(np.uint8)
    assert np.array_equal(K.count_reconstruction_failures(thresholds, offset, messages, np.uint64(5), 40),
                          R.count_reconstruction_failures(thresholds, offset, messages, 5, 40))
    first_k, dist_k = K.intra_distances(thresholds, np.uint64(77), 12)
    first_r, dist_r = R.intra_distances(thresholds, 77, 12)
    assert np.array_equal(first_k, first_r) and np.array_equal(dist_k, dist_r)


def test_warm_up_loads_the_power_on_kernels():
    K.warm_up()
    for kernel in (K.puf_read, K.cell_thresholds, K.rm_encode, K.rm_decode,
                   K.repetition_count_test, K.adaptive_proportion_test):
        assert kernel.signatures, kernel.py_func.__name__
