"""qcow2 overlays for snapshots and migration, made by our own QEMU (no qemu-img needed): a QEMU
with ``-machine none`` creates the file through QMP ``blockdev-create`` (docs/migration.md)."""

from __future__ import annotations

import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from qemu.qmp.legacy import QEMUMonitorProtocol

from pyhsm import paths
from pyhsm.host.sockets import wait_listening

QCOW2_MAGIC = b"QFI\xfb"


def virtual_size(image: Path) -> int:
    """The guest-visible size of a raw or qcow2 image."""
    with open(image, "rb") as f:
        head = f.read(32)
    if head[:4] == QCOW2_MAGIC:
        return int(struct.unpack(">Q", head[24:32])[0])
    return image.stat().st_size


def image_format(image: Path) -> str:
    with open(image, "rb") as f:
        return "qcow2" if f.read(4) == QCOW2_MAGIC else "raw"


def wait_job(qmp: Callable[..., Any], job_id: str, deadline: float, what: str) -> None:
    """Wait until QMP job ``job_id`` has concluded (``qmp(command, **arguments)`` runs a QMP command),
    then dismiss it; raises ``RuntimeError`` naming ``what`` with the job's error, or at ``deadline``
    (``time.monotonic()``) if it has not concluded."""
    while True:
        job = {j["id"]: j for j in qmp("query-jobs")}.get(job_id)
        if job and job["status"] == "concluded":
            qmp("job-dismiss", id=job_id)
            if job.get("error"):
                raise RuntimeError(f"{what}: {job['error']}")
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: no result in time")
        time.sleep(0.01)


def create_overlay(base: Path, overlay: Path, qemu: Path | None = None, timeout: float = 30.0) -> Path:
    """A new qcow2 ``overlay`` whose backing file is ``base`` (absolute path, raw or qcow2); the base
    is never written through it. Raises ``RuntimeError`` naming QEMU's error."""
    base = base.resolve()
    overlay.parent.mkdir(parents=True, exist_ok=True)
    overlay.unlink(missing_ok=True)
    overlay.touch()
    with tempfile.TemporaryDirectory(prefix="pyhsm-qcow2-") as tmp:
        sock = Path(tmp) / "qmp.sock"
        proc = subprocess.Popen([str(qemu or paths.qemu()), "-machine", "none", "-nodefaults",
                                 "-no-user-config", "-display", "none",
                                 "-qmp", f"unix:{sock},server=on,wait=off"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + timeout
            if not wait_listening(sock, proc, timeout):
                raise RuntimeError(f"QEMU (qcow2 helper) did not start: {proc.stderr.read() if proc.stderr else ''!r}")
            qmp = QEMUMonitorProtocol(str(sock))
            qmp.connect()
            try:
                qmp.cmd("blockdev-add", driver="file", **{"node-name": "out"}, filename=str(overlay))
                qmp.cmd("blockdev-create", **{"job-id": "create"},
                        options={"driver": "qcow2", "file": "out", "size": virtual_size(base),
                                 "backing-file": str(base), "backing-fmt": image_format(base)})
                wait_job(qmp.cmd, "create", deadline, f"blockdev-create {overlay}")
                qmp.cmd("blockdev-del", **{"node-name": "out"})
                qmp.cmd("quit")
            finally:
                try:
                    qmp.close()
                except (EOFError, OSError):   # QEMU quit first: nothing left to close
                    pass
            proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return overlay
