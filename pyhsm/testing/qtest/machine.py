"""Launch QEMU under ``-accel qtest`` with a qtest channel and a QMP channel.

The machine is a q35 with no default devices and no guest code running: the test is the only
"CPU". QEMU's stderr (including ``-d guest_errors`` output) goes to ``log_path``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from qemu.qmp.legacy import QEMUMonitorProtocol

from pyhsm import paths
from pyhsm.host.qemu_devices import MAILBOX_ADDRESS, device_argv, hsm_device, mailbox_device, socket_chardev_argv
from pyhsm.testing.qtest.protocol import Qtest

CONNECT_TIMEOUT_S = 20.0
HSM_DEVICE_ID = "hsm"
HSM_QOM_PATH = f"/machine/peripheral/{HSM_DEVICE_ID}"


class QemuMissing(RuntimeError):
    """The QEMU binary has not been built."""


def require_qemu(binary: Path | None = None) -> Path:
    """Return ``binary`` (default: the build's QEMU) or raise ``QemuMissing`` naming how to build it."""
    binary = binary or paths.qemu()
    if not binary.is_file():
        raise QemuMissing(f"{binary} is missing: build it with `make qemu` (make test does this first)")
    return binary


def hsm_device_args(backend_socket: Path | str, **props: Any) -> list[str]:
    """QEMU arguments for one azihsm device (QOM id ``hsm``) linked to a backend socket; ``props``
    are ``qemu_devices.hsm_device`` keywords."""
    return (socket_chardev_argv("hsm0", backend_socket, 200)
            + device_argv(hsm_device(HSM_DEVICE_ID, "hsm0", **props)))


MAILBOX_ID = "mbx"
MAILBOX_QOM_PATH = f"/machine/peripheral/{MAILBOX_ID}"


def mailbox_device_args(backend_socket: Path | str, *, serial: str | None = None,
                        address: int = MAILBOX_ADDRESS, timeout_ms: int | None = None) -> list[str]:
    """QEMU arguments for one azihsm-i2c serial mailbox (QOM id ``mbx``) on q35's ICH9 SMBus."""
    return (socket_chardev_argv("mbx0", backend_socket, 200)
            + device_argv(mailbox_device(MAILBOX_ID, "mbx0", serial=serial, address=address,
                                         timeout_ms=timeout_ms)))


class Machine:
    """One QEMU process. Use as a context manager; ``qtest`` and ``qmp`` are live inside it.

    ``incoming=True`` starts a migration destination (``-incoming defer``; see ``migration.py``)."""

    def __init__(self, extra_args: Sequence[str] = (), *, memory: str = "256M",
                 binary: Path | None = None, incoming: bool = False) -> None:
        self._binary = require_qemu(binary)
        self._extra_args = list(extra_args) + (["-incoming", "defer"] if incoming else [])
        self._memory = memory
        self._dir = Path(tempfile.mkdtemp(prefix="qt-", dir="/tmp"))
        self.log_path = self._dir / "qemu.log"
        self.process: subprocess.Popen | None = None
        self._final_log = ""
        self.qtest: Qtest
        self.qmp: QEMUMonitorProtocol

    def __enter__(self) -> Machine:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        qtest_path, qmp_path = self._dir / "qtest.sock", self._dir / "qmp.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(qtest_path))
        listener.listen(1)
        listener.settimeout(0.1)
        args = [str(self._binary), "-machine", "q35", "-accel", "qtest", "-nodefaults", "-display", "none",
                "-L", str(paths.qemu_firmware()), "-m", self._memory, "-d", "guest_errors",
                "-qtest", f"unix:{qtest_path}", "-qmp", f"unix:{qmp_path},server=on,wait=off",
                *self._extra_args]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            conn = self._accept(listener)
        finally:
            listener.close()
        self.qtest = Qtest(conn)
        try:
            self.qtest.command("endianness")  # the first answer proves the main loop is running
        except OSError:
            self.process.wait(5)
            raise RuntimeError(f"QEMU exited during start-up; its output:\n{self.log()}") from None
        self.qmp = QEMUMonitorProtocol(str(qmp_path))
        self.qmp.connect()

    def _accept(self, listener: socket.socket) -> socket.socket:
        """Wait for QEMU's qtest connection; fail at once if QEMU exits (bad arguments, missing device)."""
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                if self.process.poll() is not None:
                    break
                continue
            conn.settimeout(None)
            return conn
        raise RuntimeError(f"QEMU did not connect its qtest channel; its output:\n{self.log()}")

    def alive(self) -> bool:
        """True if the process runs and answers both a qtest and a QMP command."""
        if self.process is None or self.process.poll() is not None:
            return False
        try:
            self.qtest.command("endianness")
            return self.qmp.cmd("query-status")["status"] is not None
        except (OSError, EOFError):
            return False

    def qom_get(self, prop: str, path: str = HSM_QOM_PATH) -> object:
        return self.qmp.cmd("qom-get", path=path, property=prop)

    def log(self) -> str:
        """QEMU's stderr so far (or at exit, once stopped)."""
        if self.log_path.exists():
            return self.log_path.read_text(errors="replace")
        return self._final_log

    def stop(self) -> None:
        """Kill QEMU and remove its sockets; the log stays readable through ``log()``."""
        for channel in ("qmp", "qtest"):
            if hasattr(self, channel):
                try:
                    getattr(self, channel).close()
                except Exception:  # noqa: BLE001 - the channel may already be broken
                    pass
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._final_log = self.log()
        shutil.rmtree(self._dir, ignore_errors=True)
