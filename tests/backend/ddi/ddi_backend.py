"""Run the real link server (pyhsm.backend.server.Backend) with DDI partitions and the test identity.

Used in-thread by the socket tests (``serving``) and as a subprocess by the crash loop and the benchmark:
    python -m tests.backend.ddi.ddi_backend SOCKET STATE_DIR   (from the repository root)
prints "ready" once listening. The identity is derived from a fixed seed and its monotonic counters are
kept in STATE_DIR, so a restarted process reads the state its predecessor wrote.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

from pyhsm.backend.ddi.partition import Partition  # noqa: E402
from pyhsm.backend.server import Backend  # noqa: E402
from pyhsm.backend.trace_recorder import Recorder  # noqa: E402
from tests.backend.ddi.ddi_identity import TestIdentity  # noqa: E402


def make_backend(state_dir: Path, recorder: Recorder | None = None) -> Backend:
    def partition(serial: str, index: int, identity: TestIdentity) -> Partition:
        return Partition(serial=serial, index=index, state_dir=state_dir / serial / f"partition-{index}",
                         identity=identity)

    def power_on(serial: str) -> TestIdentity:
        (state_dir / serial).mkdir(parents=True, exist_ok=True)
        return TestIdentity(serial, nv_file=state_dir / serial / "counters.json")

    return Backend(power_on, partition, recorder=recorder)


@contextlib.contextmanager
def serving(backend: Backend, socket_path: Path) -> Iterator[Backend]:
    """``backend`` listening on ``socket_path`` on its own thread until the block ends."""
    ready = threading.Event()
    thread = threading.Thread(target=backend.serve, args=(socket_path, ready.set), daemon=True)
    thread.start()
    try:
        if not ready.wait(10):
            raise RuntimeError(f"backend did not listen on {socket_path}")
        yield backend
    finally:
        backend.close()
        thread.join(5)


def main() -> None:
    socket_path, state_dir = Path(sys.argv[1]), Path(sys.argv[2])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    make_backend(state_dir).serve(socket_path, ready=lambda: print("ready", flush=True))


def start(socket_path: Path, state_dir: Path, **popen: Any) -> subprocess.Popen:
    """This module as a backend process on ``socket_path``; the caller reads "ready" from its stdout."""
    return subprocess.Popen([sys.executable, "-m", __spec__.name, str(socket_path), str(state_dir)],
                            cwd=Path(__file__).resolve().parents[3], stdout=subprocess.PIPE, text=True, **popen)


if __name__ == "__main__":
    main()
