"""Guest-side benchmark, one boot: HSM round trip vs the TPM's, and P-384 signing throughput.

The two round trips are measured alike, as a program that already holds its command bytes would
see them: fixed, pre-encoded request bytes, one system call per command, the answer's status
checked, no encoding or decoding in the timed loop.

* GetApiRev through the azihsm ioctl (0xC0704203), as the driver waits by default and with its
  ``poll_us`` at ``POLL_US``, against TPM2_GetRandom(8) written to /dev/tpmrm0 (tpm-crb backed by
  swtpm) and read back: ``SLICES`` alternating slices of ``SLICE_CALLS`` calls each, so load that
  arrives halfway weighs on all; median and p99 of each, and the median of the per-slice ratios.
* EccSign P-384 through the full client (``HsmClient``), with 1, 4 and 8 processes, each with its
  own descriptor, session and key.
"""

from __future__ import annotations

import ctypes
import fcntl
import multiprocessing
import os
import statistics
import struct
import time
from typing import Any, Callable

from pyhsm.client import credential
from pyhsm.client.ioctl_transport import GENERIC_CMD, HSM_CMD_IOCTL
from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.device import (
    POLL_US,
    close_client,
    driver_bound,
    driver_polling,
    open_client,
    open_new_client,
)
from pyhsm.protocol.ddi import envelope
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.protocol.ddi.types import EccCurve

SLICES = 10
SLICE_CALLS = 200
WARMUP = 50
SIGN_SECONDS = 5.0
PROCESS_COUNTS = (1, 4, 8)
TPM_DEVICE = "/dev/tpmrm0"
LATENCY_STEP = "GetApiRev (ioctl) vs TPM2_GetRandom(8) (tpm-crb, swtpm) latency"
TPM2_GET_RANDOM = struct.pack(">HIIH", 0x8001, 12, 0x0000017B, 8)  # no sessions, size, cc, bytes


def _timed(call: Callable[[], None], calls: int) -> list[int]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - started)
    return samples


def _summary(samples: list[int]) -> dict[str, Any]:
    return {"calls": len(samples), "median_us": round(statistics.median(samples) / 1000, 1),
            "p99_us": round(statistics.quantiles(samples, n=100)[98] / 1000, 1)}


def api_rev_request() -> bytes:
    """The GetApiRev request the latency step sends, encoded once before timing."""
    spec = BY_NAME["GetApiRev"]
    return envelope.encode_request(spec.code, spec.request, spec.request())


def _api_rev_call(fd: int) -> Callable[[], None]:
    """One GetApiRev through the HSM ioctl on ``fd``, from pre-encoded bytes; raises on a bad status."""
    request = api_rev_request()
    src = ctypes.create_string_buffer(request, len(request))
    dst = ctypes.create_string_buffer(256)
    command = GENERIC_CMD.pack(GENERIC_CMD.size, 0, 0, 0, 0, 0, 0, 0, len(request),
                               ctypes.addressof(src), len(dst), ctypes.addressof(dst), 0, 0, 0, 0, 0, 0)
    arg = bytearray(command)

    def get_api_rev(_buffers: tuple = (src, dst)) -> None:   # the buffers live as long as the call
        arg[:] = command
        fcntl.ioctl(fd, HSM_CMD_IOCTL, arg, True)
        *_, status, byte_count, _ext = GENERIC_CMD.unpack(arg)
        if status or not byte_count:
            raise RuntimeError(f"GetApiRev completed with status 0x{status:x}, {byte_count} bytes")
    return get_api_rev


def _get_random_call(fd: int) -> Callable[[], None]:
    """One TPM2_GetRandom(8) written to and read from ``fd``; raises on a bad answer."""
    def get_random() -> None:
        os.write(fd, TPM2_GET_RANDOM)
        answer = os.read(fd, 4096)
        code = struct.unpack(">I", answer[6:10])[0]
        if code != 0 or len(answer) != 10 + 2 + 8:
            raise RuntimeError(f"TPM2_GetRandom answered rc 0x{code:x}, {len(answer)} bytes")
    return get_random


def _polled(call: Callable[[], None]) -> Callable[[int], list[int]]:
    """``calls`` timed runs of ``call`` with the driver's poll_us at POLL_US."""
    def run(calls: int) -> list[int]:
        with driver_polling(POLL_US):
            return _timed(call, calls)
    return run


def round_trip_latency(context: Context) -> dict[str, Any]:
    """GetApiRev through the HSM, as the driver waits by default and with its poll_us at POLL_US, and
    TPM2_GetRandom through the TPM, in alternating slices."""
    hsm_fd = os.open(context["node"], os.O_RDWR)
    tpm_fd = os.open(TPM_DEVICE, os.O_RDWR)
    try:
        hsm, tpm = _api_rev_call(hsm_fd), _get_random_call(tpm_fd)
        sides: dict[str, Callable[[int], list[int]]] = {
            "hsm": lambda calls: _timed(hsm, calls), "hsm_polled": _polled(hsm), "tpm": lambda calls: _timed(tpm, calls)}
        for side in sides.values():
            side(WARMUP)
        samples: dict[str, list[int]] = {name: [] for name in sides}
        ratios: dict[str, list[float]] = {"hsm": [], "hsm_polled": []}
        for _ in range(SLICES):
            medians = {}
            for name, side in sides.items():
                got = side(SLICE_CALLS)
                samples[name] += got
                medians[name] = statistics.median(got)
            for name in ratios:
                ratios[name].append(medians[name] / medians["tpm"])
        return {"slices": SLICES, "poll_us": POLL_US, **{name: _summary(x) for name, x in samples.items()},
                "ratio": round(statistics.median(ratios["hsm"]), 3),
                "ratio_polled": round(statistics.median(ratios["hsm_polled"]), 3)}
    finally:
        os.close(hsm_fd)
        os.close(tpm_fd)


def establish(context: Context) -> dict[str, Any]:
    return credential.ensure_established(open_client(context))


def _signer(context: Context, start: Any, counts: Any, index: int) -> None:
    client = open_new_client(context)
    try:
        credential.open_session(client)
        key = client.ecc_generate_key_pair(EccCurve.P384, session_only=True).private_key_id
        digest = bytes(48)
        start.wait(timeout=300)   # a signer that failed to set up breaks the barrier
        deadline = time.monotonic() + SIGN_SECONDS
        done = 0
        while time.monotonic() < deadline:
            client.ecc_sign(key, digest)
            done += 1
        counts[index] = done
        client.close_session()
    finally:
        client.transport.close()


def sign_throughput(processes: int) -> Callable[[Context], dict[str, Any]]:
    def measure(context: Context) -> dict[str, Any]:
        fork = multiprocessing.get_context("fork")
        start = fork.Barrier(processes)
        counts = fork.Array("q", processes)
        workers = [fork.Process(target=_signer, args=(context, start, counts, i))
                   for i in range(processes)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if any(w.exitcode != 0 for w in workers) or not all(counts):
            raise RuntimeError(f"signer exit codes {[w.exitcode for w in workers]}")
        return {"processes": processes, "signs": sum(counts),
                "signs_per_s": round(sum(counts) / SIGN_SECONDS, 1)}
    return measure


WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound),
           Step(LATENCY_STEP, round_trip_latency),
           Step("establish credential", establish),
           *(Step(f"P-384 sign throughput, {n} processes", sign_throughput(n))
             for n in PROCESS_COUNTS)),
    cleanup=close_client)
