"""Snapshots and live migration of a running VM through QMP (docs/migration.md).

- ``migrate``: the source side of a migration to any URI (``unix:PATH`` for a live migration to
  another QEMU, ``file:PATH`` for a snapshot), with the speed limits lifted; returns QEMU's figures
  (total time, downtime, setup time, bytes) or raises ``MigrationError`` with QEMU's reason.
- ``accept``: the destination side, a QEMU started with ``-incoming defer`` (``VmConfig.incoming``):
  ``migrate-incoming`` with ``exit-on-error`` off, so a refused stream leaves the destination alive
  and its reason (the device's own error line from QEMU's stderr included) in the exception.
- ``Snapshot``: a saved ready guest, ``DIR/NAME/`` = ``memory.mig`` (the migration stream, taken
  with the guest agent waiting and the HSM quiescent), ``disk.qcow2`` (the root disk's overlay at
  that moment; read-only from then on: every restore writes its own overlay on top) and
  ``snapshot.json`` (what it was taken with, checked before a restore).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyhsm import paths
from pyhsm.host import disks
from pyhsm.host.images import GuestImages
from pyhsm.host.vm import Vm

MAX_BANDWIDTH = 64 << 30        # bytes/s: no throttle on one machine (QEMU's default is 128 MiB/s)
DOWNTIME_LIMIT_MS = 300         # QEMU's default, stated
MIGRATE_TIMEOUT_S = 300.0
CAPABILITIES = ("return-path",)  # the source learns the destination's verdict (a refused stream fails it)


FLEET_KEY_BYTES = 48            # the fleet migration key `pyhsm serve --migration-key` reads


def fleet_key(path: Path) -> Path:
    """Make ``path`` a new fleet migration key (random, mode 0600, created exclusively) and return it.

    The HSMs a guest may migrate between share it, so the partition context sealed by the source opens
    at the destination (docs/security.md, "Migration context"); pass it to each backend as
    ``--migration-key``. It is as secret as a backend's state directory."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(os.urandom(FLEET_KEY_BYTES))
    return path


class MigrationError(RuntimeError):
    """A migration failed; the message carries QEMU's reason (and the destination's, if known)."""


@dataclass(frozen=True)
class MigrationStats:
    status: str
    total_ms: float            # query-migrate total-time: start to completion
    downtime_ms: float         # query-migrate downtime: the guest stopped (source) to running (destination)
    setup_ms: float
    ram_bytes: int             # bytes transferred
    wall_s: float              # migrate command to completion, measured here

    def note(self) -> str:
        return (f"total {self.total_ms:.0f} ms, downtime {self.downtime_ms:.0f} ms, setup "
                f"{self.setup_ms:.0f} ms, {self.ram_bytes / 2**20:.1f} MiB")


def _tune(vm: Vm, capabilities: tuple[str, ...]) -> None:
    if capabilities:
        vm.qmp("migrate-set-capabilities",
               capabilities=[{"capability": c, "state": True} for c in capabilities])
    vm.qmp("migrate-set-parameters", **{"max-bandwidth": MAX_BANDWIDTH,
                                        "downtime-limit": DOWNTIME_LIMIT_MS})


def migrate(vm: Vm, uri: str, *, capabilities: tuple[str, ...] = CAPABILITIES,
            timeout: float = MIGRATE_TIMEOUT_S) -> MigrationStats:
    """Migrate ``vm`` to ``uri`` and wait for the outcome (the source stays paused afterwards)."""
    _tune(vm, capabilities)
    started = time.monotonic()
    vm.qmp("migrate", uri=uri)
    while True:
        info = vm.qmp("query-migrate")
        status = info.get("status", "none")
        if status == "completed":
            ram = info.get("ram", {})
            return MigrationStats(status, float(info.get("total-time", 0)),
                                  float(info.get("downtime", 0)), float(info.get("setup-time", 0)),
                                  int(ram.get("transferred", 0)), time.monotonic() - started)
        if status in ("failed", "cancelled"):
            raise MigrationError(f"migration to {uri} {status}: "
                                 f"{info.get('error-desc', 'QEMU gave no reason')}")
        if time.monotonic() - started > timeout:
            vm.qmp("migrate_cancel")
            raise MigrationError(f"migration to {uri} did not complete within {timeout:.0f} s "
                                 f"(status {status})")
        time.sleep(0.01)


def start_incoming(vm: Vm, uri: str, capabilities: tuple[str, ...] = CAPABILITIES) -> None:
    """Tell a ``-incoming defer`` QEMU where its state comes from (it keeps running on error)."""
    _tune(vm, capabilities)
    vm.qmp("migrate-incoming", uri=uri, **{"exit-on-error": False})


def wait_incoming(vm: Vm, timeout: float = MIGRATE_TIMEOUT_S) -> float:
    """Wait until the destination runs the guest; returns the seconds waited. Raises
    ``MigrationError`` with QEMU's reason and the device's error lines when the stream is refused."""
    started = time.monotonic()
    while True:
        status = vm.qmp("query-status")["status"]
        if status == "running":
            return time.monotonic() - started
        info = vm.qmp("query-migrate")
        if info.get("status") in ("failed", "cancelled"):
            raise MigrationError(refusal(vm, info))
        if time.monotonic() - started > timeout:
            raise MigrationError(f"the destination did not start the guest within {timeout:.0f} s "
                                 f"(status {status}, migration {info.get('status')})")
        time.sleep(0.005)


def refusal(vm: Vm, info: dict[str, Any] | None = None) -> str:
    """Why the destination refused the stream: query-migrate's error and QEMU's stderr lines."""
    info = info if info is not None else vm.qmp("query-migrate")
    lines = [line for line in vm.stderr_text().splitlines() if line.strip()]
    return (f"the destination refused the migration stream: "
            f"{info.get('error-desc', 'no reason given')}" + (f" ({' | '.join(lines[-4:])})" if lines else ""))


def accept(vm: Vm, uri: str, timeout: float = MIGRATE_TIMEOUT_S) -> float:
    start_incoming(vm, uri)
    return wait_incoming(vm, timeout)


def live_migrate(source: Vm, destination: Vm, uri: str,
                 timeout: float = MIGRATE_TIMEOUT_S) -> MigrationStats:
    """Live migration between two running QEMUs over ``uri`` (``unix:PATH``): the destination
    listens first, then the source migrates; returns once the destination runs the guest. A refused
    stream raises ``MigrationError`` with the destination's reason; the source is then running again
    (``cont``), so the guest is not lost."""
    start_incoming(destination, uri)
    try:
        stats = migrate(source, uri, timeout=timeout)
    except MigrationError as exc:
        _resume(source)
        info = destination.qmp("query-migrate")
        if info.get("status") in ("failed", "cancelled"):
            raise MigrationError(f"{refusal(destination, info)}; source: {exc}") from None
        raise
    try:
        wait_incoming(destination, timeout)
    except MigrationError:
        _resume(source)
        raise
    return stats


def _resume(vm: Vm) -> None:
    try:
        if vm.qmp("query-status")["status"] != "running":
            vm.qmp("cont")
    except Exception:  # the source is gone too: the caller's error says why
        pass


# -- snapshots --------------------------------------------------------------------------------

def snapshot_root() -> Path:
    """Where ``--save-snapshot NAME`` keeps NAME (``PYHSM_SNAPSHOTS`` or the build's ``snapshots/``)."""
    return Path(os.environ.get("PYHSM_SNAPSHOTS") or paths.build() / "snapshots")


def _stamp(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def stamps(images: GuestImages, qemu: Path) -> dict[str, Any]:
    """What a snapshot depends on: the images and QEMU (path, size, mtime), checked by ``check``."""
    return {"images": {k: _stamp(getattr(images, k)) for k in ("kernel", "initramfs", "rootfs")},
            "qemu": _stamp(qemu)}


@dataclass
class Snapshot:
    """A saved ready guest (see the module's docstring)."""

    directory: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def memory(self) -> Path:
        return self.directory / "memory.mig"

    @property
    def disk(self) -> Path:
        return self.directory / "disk.qcow2"

    @property
    def meta_file(self) -> Path:
        return self.directory / "snapshot.json"

    @classmethod
    def named(cls, name: str, root: Path | None = None) -> "Snapshot":
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"snapshot name {name!r}: use letters, digits, '-', '_' and '.'")
        return cls((root or snapshot_root()) / name)

    def prepare(self, images: GuestImages) -> Path:
        """A fresh directory and its disk overlay over the rootfs (for the VM to be saved)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for old in (self.memory, self.meta_file):
            old.unlink(missing_ok=True)
        return disks.create_overlay(images.rootfs, self.disk)

    def save(self, vm: Vm, images: GuestImages, settings: dict[str, Any]) -> MigrationStats:
        """Save ``vm`` (running on ``self.disk``) to ``memory.mig``; the VM stays paused."""
        stats = migrate(vm, f"file:{self.memory}", capabilities=())
        self.meta = {"format": 1, "settings": settings, "created": time.time(),
                     **stamps(images, vm.config.qemu), "save": asdict(stats),
                     "memory_bytes": self.memory.stat().st_size}
        self.meta_file.write_text(json.dumps(self.meta, indent=1, sort_keys=True) + "\n")
        return stats

    def load(self) -> "Snapshot":
        """Read ``snapshot.json``; raises ``FileNotFoundError`` naming what is missing."""
        for needed in (self.meta_file, self.memory, self.disk):
            if not needed.exists():
                raise FileNotFoundError(f"snapshot {self.directory.name}: {needed} is missing "
                                        f"(save it with `pyhsm run --save-snapshot {self.directory.name}`)")
        self.meta = json.loads(self.meta_file.read_text())
        return self

    def check(self, images: GuestImages, qemu: Path) -> None:
        """Refuse a restore whose images or QEMU changed since the save (the disk overlay's backing
        file and the memory's kernel must be the very ones), naming what changed."""
        changed = [name for name in ("kernel", "initramfs", "rootfs")
                   if _stamp(getattr(images, name)) != self.meta["images"][name]]
        if _stamp(qemu) != self.meta["qemu"]:
            changed.append(f"QEMU ({qemu})")
        if changed:
            raise RuntimeError(f"snapshot {self.directory.name} was saved with other "
                               f"{', '.join(changed)}: save it again (`pyhsm run --save-snapshot "
                               f"{self.directory.name}`)")

    def restore_disk(self, overlay: Path) -> Path:
        """This restore's own overlay over the snapshot's disk (which stays as saved)."""
        return disks.create_overlay(self.disk, overlay)
