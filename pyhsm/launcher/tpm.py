"""swtpm (Debian) as a TPM 2.0 for the VM's tpm-crb: the anchor the HSM's latency is compared with."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

START_TIMEOUT_S = 10.0


class SwtpmProcess:
    """``swtpm socket --tpm2`` with its control channel on ``socket``; exits with QEMU's connection."""

    def __init__(self, state: Path, socket: Path, log: Path) -> None:
        self.state, self.socket, self.log = state, socket, log
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start swtpm and wait for its socket; raises ``RuntimeError`` naming what failed."""
        self.state.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        try:
            self._proc = subprocess.Popen(
                ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.state}",
                 "--ctrl", f"type=unixio,path={self.socket}", "--terminate",
                 "--log", f"file={self.log},level=1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise RuntimeError("swtpm is not installed (Debian package swtpm)") from None
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.socket.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self.stop()
                raise RuntimeError(f"swtpm did not start: {err.strip()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(10)
        self._proc = None
