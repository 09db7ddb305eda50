"""The HSM backend as a child process (``pyhsm serve``), so it can be killed and restarted: for the
launcher's VMs, the device tests and the benchmarks."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

READY_TIMEOUT_S = 60.0


class BackendProcess:
    """``pyhsm serve --socket SOCKET --state STATE``; its stderr goes to ``log``. Ready once it
    prints its ``ready`` line; may be started again after ``stop`` or ``kill``."""

    def __init__(self, socket: Path, state: Path, log: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.socket = socket
        self.state = state
        self.log = log
        self.extra_args = extra_args        # more `pyhsm serve` options (e.g. --trace FILE)
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start the backend and wait until it listens; raises ``RuntimeError`` with the log's last
        lines if it exits first or is not ready within ``READY_TIMEOUT_S``."""
        self.state.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pyhsm.cli", "serve", "--socket", str(self.socket),
                 "--state", str(self.state), *self.extra_args],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
                start_new_session=True)
        outcome: queue.Queue[bool] = queue.Queue()

        def watch(stdout: IO[str]) -> None:   # drains stdout for the process's life
            for line in stdout:
                if line.startswith("ready"):
                    outcome.put(True)
            outcome.put(False)
        assert self._proc.stdout is not None
        threading.Thread(target=watch, args=(self._proc.stdout,), daemon=True).start()
        try:
            ready = outcome.get(timeout=READY_TIMEOUT_S)
        except queue.Empty:
            ready = False
        if not ready:
            self.stop()
            raise RuntimeError(f"the backend did not start listening on {self.socket}; "
                               f"see {self.log}: {self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def log_tail(self, lines: int = 5) -> str:
        """The log's last ``lines`` lines, joined with `` | ``."""
        try:
            return " | ".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

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

    def __enter__(self) -> BackendProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
