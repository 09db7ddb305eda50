"""Per-command cost of the backend: GetApiRev on `pyhsm serve`'s socket against TPM2_GetRandom on
swtpm's own socket (the anchor: an emulator process behind a UNIX socket doing the same kind of job).

Both sides are driven the same way: pre-encoded request bytes, one ``sendall``, the answer read back
exactly, one command at a time. Slices of the two alternate (``SLICES`` each) so both see the same
background load; medians and p99 over all samples; the machine's load is printed. Goal: HSM / TPM
median ratio at most 1.0.

    build/venv/bin/python -m tests.bench.bench_roundtrip [--count N] [--slices N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]

from pyhsm.host.backend import BackendProcess  # noqa: E402
from pyhsm.host.sockets import wait_listening  # noqa: E402
from pyhsm.protocol import link  # noqa: E402

GET_API_REV = bytes.fromhex("A2 18 00 A1 18 02 1A 00 00 03 EA 18 01 A0")
TPM2_GET_RANDOM_16 = bytes.fromhex("8001 0000000C 0000017B 0010")
GOAL = 1.0


def exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return bytes(data)


def hsm_round_trip(path: Path) -> Callable[[], None]:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(path))
    sock.sendall(link.encode_frame(0, link.Hello.make("AZIHSM-BENCH-RT")))
    ack = link.decode_frame(exactly(sock, link.HEADER.size + link.HelloAck.LAYOUT.size))[1]
    assert isinstance(ack, link.HelloAck) and ack.result == link.HelloAck.ACCEPTED, ack
    frame = link.encode_frame(1, link.Request(1, 0, 0, 0, 0, link.MAX_PAYLOAD, GET_API_REV))

    def once() -> None:
        sock.sendall(frame)
        header = exactly(sock, link.HEADER.size)
        body = exactly(sock, link.decode_header(header)[2])
        assert body[:2] == b"\0\0", "GetApiRev failed"
    return once


def tpm_round_trip(path: Path) -> Callable[[], None]:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(path))

    def once() -> None:
        sock.sendall(TPM2_GET_RANDOM_16)
        header = exactly(sock, 10)
        rest = exactly(sock, int.from_bytes(header[2:6], "big") - 10)
        assert header[6:10] == bytes(4) and len(rest) == 18, (header + rest).hex()
    return once


def swtpm(workdir: Path) -> tuple[subprocess.Popen, Path]:
    if not shutil.which("swtpm"):
        raise RuntimeError("swtpm is not installed (Debian package swtpm); it is the benchmark's anchor")
    data, ctrl, state = workdir / "swtpm.sock", workdir / "swtpm.ctrl", workdir / "tpm"
    state.mkdir()
    proc = subprocess.Popen(["swtpm", "socket", "--tpm2", "--server", f"type=unixio,path={data}",
                             "--ctrl", f"type=unixio,path={ctrl}", "--tpmstate", f"dir={state}",
                             "--flags", "startup-clear"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_listening(data, proc, 10):
        raise RuntimeError("swtpm did not open its socket")
    return proc, data


def timed(once: Callable[[], None], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        once()
        samples.append(time.perf_counter() - started)
    return samples


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="timed commands per side (default 3000)")
    parser.add_argument("--slices", type=int, default=10, help="alternating slices per side (default 10)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-rt-"))
    tpm_proc = None
    try:
        with BackendProcess(workdir / "run" / "hsm.sock", workdir / "state", workdir / "backend.log"):
            tpm_proc, tpm_sock = swtpm(workdir)
            hsm, tpm = hsm_round_trip(workdir / "run" / "hsm.sock"), tpm_round_trip(tpm_sock)
            timed(hsm, 200), timed(tpm, 200)                      # warm-up
            per_slice = max(1, args.count // args.slices)
            hsm_samples: list[float] = []
            tpm_samples: list[float] = []
            loads = []
            for _ in range(args.slices):
                hsm_samples += timed(hsm, per_slice)
                tpm_samples += timed(tpm, per_slice)
                loads.append(os.getloadavg()[0])
    finally:
        if tpm_proc is not None:
            tpm_proc.terminate()
            tpm_proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    h50, t50 = statistics.median(hsm_samples) * 1e6, statistics.median(tpm_samples) * 1e6
    print(f"per-command round trip, {len(hsm_samples)} commands per side in {args.slices} alternating slices; "
          f"machine load {min(loads):.2f}-{max(loads):.2f}")
    print(f"{'path':48} {'median us':>10} {'p99 us':>10}")
    print(f"{'pyhsm serve socket, GetApiRev':48} {h50:10.1f} {p99(hsm_samples) * 1e6:10.1f}")
    print(f"{'swtpm socket, TPM2_GetRandom(16)':48} {t50:10.1f} {p99(tpm_samples) * 1e6:10.1f}")
    ratio = h50 / t50
    print(f"goal: HSM / TPM median <= {GOAL:.1f}: {ratio:.2f}x ({'met' if ratio <= GOAL else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
