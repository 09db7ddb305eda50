"""Fairness between devices: a neighbour's GetApiRev latency while another partition loops NSSR and
EstablishCredential (key generation and state saves), against the same neighbour on a quiet backend.

The backend is the real link server and DDI partition (tests/backend/ddi/ddi_backend.py) in its own process.
Quiet and busy slices alternate (``SLICES`` each) so both see the same background load; the table shows
p50 and p99 over all samples of each kind. Goal: busy p99 at most 2x the quiet p99.

    build/venv/bin/python -m tests.bench.bench_fairness [samples per slice, default 400]
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from pyhsm.client import DdiError, HsmClient  # noqa: E402
from pyhsm.client.socket_transport import SocketTransport  # noqa: E402
from pyhsm.protocol import link  # noqa: E402
from tests.bench.bench_ddi import APP_ID, PIN, backend_socket, provisioned_clients  # noqa: E402
from tests.bench.bench_roundtrip import p99  # noqa: E402

GOAL = 2.0
SLICES = 5


def latencies(client: HsmClient, count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        client.get_api_rev()
        out.append(time.perf_counter() - started)
    return out


class HeavyNeighbour:
    """Loops NSSR + EstablishCredential on its own partition while ``running`` is set."""

    def __init__(self, sock: Path) -> None:
        self.transport = SocketTransport(sock, serial="BENCH-HEAVY")
        self.client = HsmClient(self.transport)
        self.running = threading.Event()
        self.loops = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        pota = ec.generate_private_key(ec.SECP384R1())
        while True:
            self.running.wait()
            self.transport.reset(link.ResetKind.NSSR)
            try:
                self.client.establish_credential(APP_ID, PIN, self.client.init_bk3(os.urandom(48)), pota)
            except DdiError:
                pass                       # already provisioned: the work (and its refusal) still ran
            self.loops += 1


def main() -> int:
    samples = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    with backend_socket() as sock:
        (neighbour,) = provisioned_clients(sock, "BENCH-NEIGHBOUR", 1)
        heavy = HeavyNeighbour(sock)
        quiet: list[float] = []
        busy: list[float] = []
        latencies(neighbour, 100)                      # warm-up
        for _ in range(SLICES):
            quiet += latencies(neighbour, samples)
            heavy.running.set()
            time.sleep(0.2)
            busy += latencies(neighbour, samples)
            heavy.running.clear()
            time.sleep(0.2)
    load = os.getloadavg()[0]
    q50, q99 = statistics.median(quiet) * 1e3, p99(quiet) * 1e3
    b50, b99 = statistics.median(busy) * 1e3, p99(busy) * 1e3
    print(f"machine load (1 min): {load:.2f}; heavy neighbour loops (NSSR + EstablishCredential): {heavy.loops}")
    print(f"{'neighbour GetApiRev':24} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'quiet backend':24} {q50:8.3f} {q99:8.3f}")
    print(f"{'busy neighbour':24} {b50:8.3f} {b99:8.3f}")
    ratio = b99 / q99
    print(f"goal: busy p99 <= {GOAL:.0f}x quiet p99: {ratio:.2f}x ({'met' if ratio <= GOAL else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
