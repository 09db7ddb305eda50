"""The HSM backend as a child process (``pyhsm serve``), so it can be killed and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

READY_TIMEOUT_S = 60.0


class BackendProcess:
    """``pyhsm serve --socket SOCKET --state STATE``; its stderr goes to ``log``."""

    def __init__(self, socket: Path, state: Path, log: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.socket = socket
        self.state = state
        self.log = log
        self.extra_args = extra_args        # more `pyhsm serve` options (e.g. --trace FILE)
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the backend and wait until it listens; raises ``RuntimeError`` if it does not."""
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pyhsm.cli", "serve", "--socket", str(self.socket),
                 "--state", str(self.state), *self.extra_args],
                stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        ready = threading.Event()

        def wait_ready() -> None:
            assert self._proc and self._proc.stdout
            for line in self._proc.stdout:
                if line.startswith("ready"):
                    ready.set()
        threading.Thread(target=wait_ready, daemon=True).start()
        if not ready.wait(READY_TIMEOUT_S) or self._proc.poll() is not None:
            self.stop()
            raise RuntimeError(f"the backend did not start listening on {self.socket}; "
                               f"see {self.log}: {_tail(self.log)}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def kill(self) -> None:
        """SIGKILL the backend (a crash, as far as the device can tell)."""
        if self._proc and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def stop(self) -> None:
        """Stop the backend gracefully (SIGTERM, then SIGKILL after 10 s)."""
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._proc = None

    def __enter__(self) -> "BackendProcess":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"
