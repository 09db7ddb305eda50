"""Run the real link server (pyhsm.server.Backend) with DDI partitions and the test identity.

Used in-thread by the socket tests and as a subprocess by the crash loop and the benchmark:
    python tests/ddi/ddi_backend.py SOCKET STATE_DIR
prints "ready" once listening. The identity is derived from a fixed seed, so a restarted process
reads the state its predecessor wrote.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ddi_identity import TestIdentity  # noqa: E402

from pyhsm.ddi.partition import Partition  # noqa: E402
from pyhsm.server import Backend  # noqa: E402


def make_backend(state_dir: Path) -> Backend:
    def partition(serial: str, index: int, identity: TestIdentity) -> Partition:
        return Partition(serial=serial, index=index, state_dir=state_dir / serial / f"partition-{index}",
                         identity=identity)

    return Backend(TestIdentity, partition)


def main() -> None:
    socket_path, state_dir = Path(sys.argv[1]), Path(sys.argv[2])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(make_backend(state_dir).serve(socket_path, ready=lambda: print("ready", flush=True)))


if __name__ == "__main__":
    main()
