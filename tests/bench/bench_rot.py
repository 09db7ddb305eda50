"""Root-of-trust benchmark: power-on latency (warm, new process, cold JIT cache), decode throughput of the
numba kernel against the NumPy reference in the same run, simulated power-ons and puf-stats.

Run: build/venv/bin/python -m tests.bench.bench_rot [--quick]. Prints one line per figure and a JSON
summary on the last line. Goals: warm power-on < 100 ms; numba decode >= 20x the reference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

_CHILD = """
import sys, time
from pathlib import Path
t0 = time.perf_counter()
from pyhsm.backend.rot import power_on
t1 = time.perf_counter()
power_on(Path(sys.argv[1]), Path(sys.argv[2]), serial="BENCH")
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def build_firmware(out: Path) -> None:
    subprocess.run(["make", "-s", "-C", str(ROOT / "images" / "firmware"), f"OUT={out}",
                    f"PY={sys.executable}"], check=True, capture_output=True)


def child_power_on(device_dir: Path, firmware_dir: Path, cache_dir: str) -> tuple[float, float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(device_dir), str(firmware_dir)], env=env,
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()
    return float(out[0]), float(out[1])


def bench_power_on(work: Path, firmware_dir: Path, repeats: int) -> dict:
    from pyhsm.backend.rot import power_on
    device_dir = work / "dev"
    with tempfile.TemporaryDirectory() as empty_cache:
        cold_import, cold_first = child_power_on(device_dir, firmware_dir, empty_cache)   # compiles, enrols
    new_import, new_first = child_power_on(device_dir, firmware_dir, os.environ["NUMBA_CACHE_DIR"])
    power_on(device_dir, firmware_dir, serial="BENCH")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        power_on(device_dir, firmware_dir, serial="BENCH")
        times.append(time.perf_counter() - start)
    return {"cold_jit_first_power_on_s": cold_first, "cold_jit_import_s": cold_import,
            "new_process_first_power_on_s": new_first, "new_process_import_s": new_import,
            "warm_power_on_median_ms": 1e3 * statistics.median(times), "warm_power_on_min_ms": 1e3 * min(times)}


def bench_decode(blocks: int) -> dict:
    from pyhsm.backend.rot import kernels, reference
    rng = np.random.default_rng(1)
    messages = rng.integers(0, 256, blocks).astype(np.uint8)
    words = kernels.rm_encode(messages) ^ (rng.random((blocks, 128)) < 0.10).astype(np.uint8)
    kernels.rm_decode(words[:10])

    def best_of(fn, n=3) -> float:
        runs = []
        for _ in range(n):
            start = time.perf_counter()
            out = fn(words)
            runs.append(time.perf_counter() - start)
        assert np.array_equal(out, messages)
        return min(runs)
    t_numba, t_ref = best_of(kernels.rm_decode), best_of(reference.rm_decode)
    return {"decode_numba_blocks_per_s": blocks / t_numba, "decode_reference_blocks_per_s": blocks / t_ref,
            "decode_speedup": t_ref / t_numba}


def bench_simulation(trials: int) -> dict:
    from pyhsm.backend.rot import extractor, kernels, noise
    from pyhsm.backend.rot.silicon import manufacture
    profile = manufacture("bench-sim")
    thresholds = profile.thresholds()
    response = kernels.puf_read(thresholds, noise.read_noise(os.urandom, profile.cells))
    helper, _ = extractor.enrol(response)
    messages = kernels.rm_decode((response ^ helper.offset).reshape(-1, 128))
    kernels.count_reconstruction_failures(thresholds, helper.offset, messages, np.uint64(1), 10)
    start = time.perf_counter()
    failures = kernels.count_reconstruction_failures(thresholds, helper.offset, messages, np.uint64(2), trials)
    elapsed = time.perf_counter() - start
    return {"simulated_power_ons": trials, "simulated_failures": int(np.count_nonzero(failures)),
            "simulated_power_ons_per_s": trials / elapsed}


def bench_puf_stats(devices: int, reads: int) -> dict:
    from pyhsm.backend.rot import stats
    start = time.perf_counter()
    s = stats.evaluate(stats.fleet(devices), reads)
    return {"puf_stats_devices": devices, "puf_stats_reads": reads,
            "puf_stats_s": time.perf_counter() - start, "inter_mean": s.inter_mean, "intra_mean": s.intra_mean,
            "uniformity_mean": s.uniformity_mean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (for a smoke run)")
    args = parser.parse_args()
    os.environ.setdefault("NUMBA_CACHE_DIR", str(ROOT / "build" / "numba-cache"))
    results = {"load_average_1min": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_firmware(work / "fw")
        results |= bench_power_on(work, work / "fw", repeats=10 if args.quick else 50)
    results |= bench_decode(2_000 if args.quick else 20_000)
    results |= bench_simulation(10_000 if args.quick else 200_000)
    results |= bench_puf_stats(*((100, 10) if args.quick else (1000, 100)))
    for key, value in results.items():
        print(f"{key:36s} {value:.4g}" if isinstance(value, float) else f"{key:36s} {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
