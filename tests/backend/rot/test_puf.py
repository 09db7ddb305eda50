"""SRAM PUF model, fuzzy extractor reliability, error-rate limits and noise-source health tests."""

import os

import numpy as np
import pytest

from pyhsm.backend.rot import RootOfTrustFailure, extractor, kernels, noise, stats
from pyhsm.backend.rot.silicon import Conditions, deterministic_seed, expected_ber, manufacture


def read(profile, conditions=Conditions(), source=os.urandom):
    return kernels.puf_read(profile.thresholds(conditions), noise.read_noise(source, profile.cells))


def test_same_uds_over_1000_power_ons():
    profile = manufacture("reliability", seed=deterministic_seed("reliability"))
    helper, uds = extractor.enrol(read(profile))
    for _ in range(1000):
        assert extractor.reconstruct(read(profile), helper) == uds


@pytest.mark.slow
def test_zero_failures_in_a_million_simulated_power_ons():
    profile = manufacture("million", seed=deterministic_seed("million"))
    thresholds = profile.thresholds()
    response = read(profile)
    helper, _ = extractor.enrol(response)
    messages = kernels.rm_decode((response ^ helper.offset).reshape(-1, kernels.RM_N))
    failures = kernels.count_reconstruction_failures(thresholds, helper.offset, messages,
                                                     np.uint64(int.from_bytes(os.urandom(8), "little")),
                                                     1_000_000)
    assert failures.shape == (1_000_000,)
    assert int(np.count_nonzero(failures)) == 0


def test_simulated_power_ons_do_fail_beyond_the_supported_error_rate():
    # the same machinery as the million-run test reports failures when they happen
    profile = manufacture("overstressed", seed=deterministic_seed("overstressed"))
    response = read(profile)
    helper, _ = extractor.enrol(response)
    messages = kernels.rm_decode((response ^ helper.offset).reshape(-1, kernels.RM_N))
    hot = profile.thresholds(Conditions(noise_scale=4.0))
    failures = kernels.count_reconstruction_failures(hot, helper.offset, messages, np.uint64(1), 2000)
    assert np.count_nonzero(failures) > 20   # about 5% of 2000 at this noise; the read itself is random


def test_uniqueness_and_reliability_over_100_devices():
    s = stats.evaluate(stats.fleet(100, seed=3), reads=20)
    assert abs(s.inter_mean - 0.5) < 0.01
    assert abs(s.intra_mean - 0.10) < 0.01
    assert abs(s.uniformity_mean - 0.5) < 0.01


def test_skewed_silicon_shows_bias_and_lower_uniqueness():
    s = stats.evaluate(stats.fleet(50, seed=4, skew=0.5), reads=5)
    assert s.uniformity_mean > 0.6 and s.inter_mean < 0.48


def test_calibration_hits_the_nominal_error_rate():
    for ber in (0.05, 0.10, 0.15):
        assert expected_ber(manufacture("c", seed=deterministic_seed("c"), nominal_ber=ber).sigma) == pytest.approx(ber, rel=1e-6)
    with pytest.raises(ValueError):
        manufacture("c", seed=deterministic_seed("c"), nominal_ber=0.5)


def test_failure_bound_meets_the_target_at_the_nominal_rate():
    assert extractor.key_failure_bound(0.10, 64) < 1e-9
    assert extractor.key_failure_bound(0.25, 64) > 1e-3


@pytest.mark.parametrize("conditions", [Conditions(temperature_c=85), Conditions(temperature_c=-40),
                                        Conditions(age_years=5)])
def test_reconstruction_within_the_operating_range(conditions):
    profile = manufacture("env", seed=deterministic_seed("env"))
    helper, uds = extractor.enrol(read(profile))
    for _ in range(50):
        assert extractor.reconstruct(read(profile, conditions), helper) == uds


def test_error_rate_fault_injection_fails_loudly_never_silently():
    profile = manufacture("glitch", seed=deterministic_seed("glitch"))
    helper, uds = extractor.enrol(read(profile))
    outcomes = {"ok": 0, "failed": 0}
    for scale in (3.0, 3.5, 4.0, 5.0):      # bit-error rates of roughly 0.22 to 0.3
        for _ in range(40):
            try:
                assert extractor.reconstruct(read(profile, Conditions(noise_scale=scale)), helper) == uds
                outcomes["ok"] += 1
            except RootOfTrustFailure as e:
                assert "check value" in str(e)
                outcomes["failed"] += 1
    assert outcomes["ok"] > 0 and outcomes["failed"] > 0
    for _ in range(20):
        with pytest.raises(RootOfTrustFailure, match="check value"):
            extractor.reconstruct(read(profile, Conditions(noise_scale=50.0)), helper)


def test_corrupted_helper_data_is_detected():
    profile = manufacture("helper", seed=deterministic_seed("helper"))
    helper, _ = extractor.enrol(read(profile))
    salted = extractor.HelperData(helper.offset, bytes(32), helper.check)
    with pytest.raises(RootOfTrustFailure, match="check value"):
        extractor.reconstruct(read(profile), salted)
    with pytest.raises(RootOfTrustFailure, match="cells"):
        extractor.reconstruct(read(profile)[:-128], helper)


def test_helper_data_round_trips_through_json():
    profile = manufacture("json", seed=deterministic_seed("json"))
    helper, uds = extractor.enrol(read(profile))
    again = extractor.HelperData.from_json(helper.to_json())
    assert extractor.reconstruct(read(profile), again) == uds


def test_zeroize_overwrites_in_place():
    secret = bytearray(b"\x55" * 48)
    view = memoryview(secret)
    extractor.zeroize(secret)
    assert bytes(view) == bytes(48)


def test_stuck_noise_source_trips_the_repetition_count_test():
    with pytest.raises(RootOfTrustFailure, match="repetition count"):
        noise.read_noise(lambda n: bytes(n), 8192)


def test_biased_noise_source_trips_the_adaptive_proportion_test():
    def biased(n: int) -> bytes:
        raw = bytearray(os.urandom(n))
        for i in range(n):
            raw[i] = 0 if i % 3 == 0 else (raw[i] % 255) + 1   # a third zeros, no long runs
        return bytes(raw)
    with pytest.raises(RootOfTrustFailure, match="adaptive proportion"):
        noise.read_noise(biased, 8192)


def test_short_noise_read_is_refused():
    with pytest.raises(RootOfTrustFailure, match="returned"):
        noise.read_noise(lambda n: os.urandom(n - 1), 8192)


def test_health_test_cutoffs_follow_sp800_90b():
    assert noise.rct_cutoff(4, -40) == 11
    assert noise.rct_cutoff(1, -20) == 21
    # binary source, H=1, alpha=2^-20, W=1024: SP 800-90B table 2 gives 589
    assert noise.apt_cutoff(1, -20, 1024) == 589
