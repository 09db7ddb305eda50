"""The real HSM backend (``pyhsm serve``) as a child process, for device tests and benchmarks."""

from __future__ import annotations

import selectors
import subprocess
import sys
import time
from pathlib import Path

from pyhsm.qtest.machine import REPO

READY_TIMEOUT_S = 60.0


class BackendProcess:
    """``pyhsm serve --socket SOCKET --state STATE``; ready once it prints its ``ready`` line."""

    def __init__(self, socket_path: Path, state_dir: Path) -> None:
        self.socket_path = socket_path
        self.state_dir = state_dir
        self.process: subprocess.Popen | None = None
        self.stderr_path = state_dir.parent / f"{state_dir.name}.stderr"

    def __enter__(self) -> BackendProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Launch and wait for readiness; raises ``RuntimeError`` with the backend's stderr if it dies."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pyhsm.cli", "--log-level", "warning", "serve",
                 "--socket", str(self.socket_path), "--state", str(self.state_dir)],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while time.monotonic() < deadline:
                if selector.select(0.2):
                    line = self.process.stdout.readline()
                    if line.startswith(b"ready"):
                        return
                    if not line:
                        break
        self.stop()
        raise RuntimeError(f"`pyhsm serve` did not become ready; stderr:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process is not None and self.process.stdout:
            self.process.stdout.close()
