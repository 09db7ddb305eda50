"""Per-command cost of the backend: GetApiRev on `pyhsm serve`'s socket against TPM2_GetRandom on
swtpm's own socket (the anchor: an emulator process behind a UNIX socket doing the same kind of job).

Both sides are driven the same way: pre-encoded request bytes, one ``sendall``, the answer read back
exactly, one command at a time. Slices of the two alternate (``SLICES`` each) so both see the same
background load; medians and p99 over all samples; the machine's load is printed. Goal: HSM / TPM
median ratio at most 1.0.

A third side, in the same alternation, is the floor of any Python backend: ``python_peer.py``, a Python
process that reads each frame and writes the backend's own GetApiRev answer back, blocking I/O on one
thread like the backend's connection thread, decoding and executing nothing.

Where the scheduler puts the two ends of a socket decides much of a round trip: on a virtual machine,
waking a thread on an idle core costs far more than switching to it on the core that just blocked
(docs/benchmarks.md). So the bench pins itself to one CPU and runs the whole alternation twice, with
every server process (all its threads) pinned to the same CPU and then to another one, and reports
both. On a machine with one CPU only the first is run.

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


def hsm_round_trip(path: Path, hello: bool = True) -> tuple[Callable[[], None], bytes]:
    """GetApiRev on the link socket at ``path`` (after a HELLO if ``hello``) and its first answer frame."""
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(path))
    if hello:
        sock.sendall(link.encode_frame(0, link.Hello.make("AZIHSM-BENCH-RT")))
        ack = link.decode_frame(exactly(sock, link.HEADER.size + link.HelloAck.LAYOUT.size))[1]
        assert isinstance(ack, link.HelloAck) and ack.result == link.HelloAck.ACCEPTED, ack
    frame = link.encode_frame(1, link.Request(1, 0, 0, 0, 0, link.MAX_PAYLOAD, GET_API_REV))
    answer = []

    def once() -> None:
        sock.sendall(frame)
        header = exactly(sock, link.HEADER.size)
        body = exactly(sock, link.decode_header(header)[2])
        assert body[:2] == b"\0\0", "GetApiRev failed"
        answer[:] = [header + body]
    once()
    return once, answer[0]


def python_peer(workdir: Path, answer: bytes) -> tuple[subprocess.Popen, Path]:
    path = workdir / "peer.sock"
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.python_peer", str(path), answer.hex()],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if not wait_listening(path, proc, 30):
        raise RuntimeError("the Python peer did not open its socket")
    return proc, path


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


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of process ``pid`` to ``cpu`` (threads it starts later inherit it)."""
    for task in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(task), {cpu})


def alternate(sides: dict[str, Callable[[], None]], count: int, slices: int) -> tuple[dict[str, list[float]],
                                                                                         list[float]]:
    """Samples of each side, taken in ``slices`` alternating slices, and the load after each slice."""
    for once in sides.values():
        timed(once, 200)                                        # warm-up
    per_slice = max(1, count // slices)
    samples: dict[str, list[float]] = {name: [] for name in sides}
    loads = []
    for _ in range(slices):
        for name, once in sides.items():
            samples[name] += timed(once, per_slice)
        loads.append(os.getloadavg()[0])
    return samples, loads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="timed commands per side (default 3000)")
    parser.add_argument("--slices", type=int, default=10, help="alternating slices per side (default 10)")
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    placements = {"same core": cpus[0], "other core": cpus[1]} if len(cpus) > 1 else {"same core": cpus[0]}
    workdir = Path(tempfile.mkdtemp(prefix="bench-rt-"))
    children: list[subprocess.Popen] = []
    results: dict[str, tuple[dict[str, list[float]], list[float]]] = {}
    try:
        with BackendProcess(workdir / "run" / "hsm.sock", workdir / "state", workdir / "backend.log") as backend:
            tpm_proc, tpm_sock = swtpm(workdir)
            children.append(tpm_proc)
            hsm, answer = hsm_round_trip(workdir / "run" / "hsm.sock")
            peer_proc, peer_sock = python_peer(workdir, answer)
            children.append(peer_proc)
            sides = {"pyhsm serve socket, GetApiRev": hsm,
                     "do-nothing Python peer, the same frames": hsm_round_trip(peer_sock, hello=False)[0],
                     "swtpm socket, TPM2_GetRandom(16)": tpm_round_trip(tpm_sock)}
            os.sched_setaffinity(0, {cpus[0]})
            for placement, cpu in placements.items():
                for pid in (backend.pid, tpm_proc.pid, peer_proc.pid):
                    assert pid is not None
                    pin(pid, cpu)
                results[placement] = alternate(sides, args.count, args.slices)
    finally:
        os.sched_setaffinity(0, cpus)
        for child in children:
            child.terminate()
            child.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"per-command round trip, {args.count} commands per side in {args.slices} alternating slices, "
          f"the bench on CPU {cpus[0]}")
    ratios: dict[str, float] = {}
    for placement, (samples, loads) in results.items():
        print(f"\nservers on the {placement} (CPU {placements[placement]}); machine load "
              f"{min(loads):.2f}-{max(loads):.2f}")
        print(f"{'path':48} {'median us':>10} {'p99 us':>10}")
        h50, f50, t50 = (statistics.median(x) * 1e6 for x in samples.values())
        for name, x in samples.items():
            print(f"{name:48} {statistics.median(x) * 1e6:10.1f} {p99(x) * 1e6:10.1f}")
        print(f"the Python floor is {f50 / t50:.2f}x swtpm; the backend is {h50 / f50:.2f}x the floor")
        ratios[placement] = h50 / t50
    met = all(ratio <= GOAL for ratio in ratios.values())
    print(f"\ngoal: HSM / TPM median <= {GOAL:.1f}: "
          f"{', '.join(f'{placement} {ratio:.2f}x' for placement, ratio in ratios.items())} "
          f"({'met' if met else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
