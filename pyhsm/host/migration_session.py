"""``pyhsm run --save-snapshot / --from-snapshot / --migrate`` (docs/migration.md).

- save: boot with the guest agent waiting (``pyhsm.wait=1``) on a qcow2 overlay of the rootfs,
  check the HSM over QMP, and when the agent reports ``ready`` (azihsm loaded, no command sent: the
  device is quiescent) migrate the VM to ``file:`` in the snapshot's directory and quit.
- restore: a ``-incoming defer`` QEMU on a new overlay of the snapshot's disk, ``migrate-incoming
  file:``, then the ``run`` command on the console; the workload's steps as usual.
- migrate: the ``migration`` workload on a source VM; at its ``ready`` report a destination QEMU
  (same backend, or a second backend with another serial: another physical HSM) takes the VM over
  a UNIX socket; the host then sends ``go`` and grades the rest of the workload on the destination.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from pyhsm import paths
from pyhsm.client import host_commands
from pyhsm.host import accel, images, migration
from pyhsm.host.backend import BackendProcess
from pyhsm.host.summary import Summary
from pyhsm.host.vm import BOOT_TIMEOUT_S, WORKLOAD_TIMEOUT_S, Vm, VmConfig

MIGRATE_MODES = ("same", "other-backend")
READY_TIMEOUT_S = 600.0


def other_serial(serial: str) -> str:
    """The destination HSM's serial for ``--migrate other-backend``: another physical device."""
    return (serial[:30] + "-B") if not serial.endswith("-B") else serial[:-2] + "-C"


@dataclass
class Pair:
    """A live migration's two ends and what it measured."""

    source: Vm
    destination: Vm
    stats: migration.MigrationStats


def restore(snapshot: migration.Snapshot, config: VmConfig,
            echo: Callable[[str], None] | None = None) -> tuple[Vm, float]:
    """Start a VM from ``snapshot`` (``config`` with its own workdir and backend socket); returns
    it running and the seconds from QEMU's start to the guest running. The caller kills it."""
    settings = snapshot.meta["settings"]
    config = replace(config, incoming=True, agent_wait=True, console_input=True, vmgenid="auto",
                     disk=snapshot.restore_disk(config.workdir / "disk.qcow2"),
                     cpus=settings["cpus"], memory_mb=settings["memory_mb"],
                     accel=settings["accel"], serial=settings["serial"],
                     res_cnt=settings.get("res_cnt"))
    vm = Vm(config, echo=echo)
    vm.start()
    try:
        migration.accept(vm, f"file:{snapshot.memory}")
    except Exception:
        vm.kill()
        raise
    return vm, time.monotonic() - vm.started_at


def run_workload(vm: Vm, workload: str, timeout: float = 60.0) -> dict[str, Any]:
    """Send the ``run`` command to a waiting agent; returns its ``start`` event."""
    vm.send_console(host_commands.format_command(host_commands.RUN, workload=workload))
    return vm.wait_for("start", timeout)


def save(snapshot: migration.Snapshot, config: VmConfig,
         echo: Callable[[str], None] | None = None,
         on_ready: Callable[[Vm, dict[str, Any]], None] | None = None) -> migration.MigrationStats:
    """Boot ``config`` with a waiting agent on the snapshot's disk, save it at ``ready``, quit."""
    config = replace(config, agent_wait=True, console_input=True, vmgenid="auto",
                     disk=snapshot.prepare(config.images))
    with Vm(config, echo=echo) as vm:
        vm.wait_boot(BOOT_TIMEOUT_S[config.accel])
        ready = vm.wait_for("ready", BOOT_TIMEOUT_S[config.accel])
        if on_ready:
            on_ready(vm, ready)
        stats = snapshot.save(vm, config.images, {
            "cpus": config.cpus, "memory_mb": config.memory_mb, "accel": config.accel,
            "serial": config.serial, "res_cnt": config.res_cnt, "firmware": config.firmware,
            "workload": config.workload, "ready_uptime_s": ready.get("uptime_s")})
        vm.quit()
    return stats


def live(source: Vm, destination_config: VmConfig, echo: Callable[[str], None] | None = None) -> Pair:
    """Migrate ``source`` to a new QEMU for ``destination_config`` (same disk, ``-incoming
    defer``) over a UNIX socket in its workdir. On failure the destination is killed, the source
    keeps running, and ``MigrationError`` says why."""
    guid = source.qmp("query-vm-generation-id")["guid"] if source.config.vmgenid else None
    destination = Vm(replace(destination_config, incoming=True, console_input=True, vmgenid=guid,
                             disk=source.config.disk), echo=echo)
    destination.start()
    sock = destination_config.workdir / "migrate.sock"
    sock.unlink(missing_ok=True)
    try:
        stats = migration.live_migrate(source, destination, f"unix:{sock}")
    except Exception:
        destination.kill()
        raise
    return Pair(source, destination, stats)


# -- pyhsm run ---------------------------------------------------------------------------------

def run(options: Any, workdir: Path, summary: Summary, out: Callable[[str], None]) -> None:
    """The snapshot and migration modes of ``pyhsm run`` (``options``: session.RunOptions)."""
    from pyhsm.host import session  # the shared steps (boot, device check, workload rows)
    echo = (lambda line: out(f"    | {line}")) if options.verbose else None
    snapshot = None
    if options.from_snapshot:
        with summary.timed("snapshot: check images and QEMU") as notes:
            snapshot = migration.Snapshot.named(options.from_snapshot, options.snapshot_dir).load()
            built = images.current()
            snapshot.check(built, paths.qemu())
            notes.append(f"{snapshot.directory}, {snapshot.meta['memory_bytes'] / 2**20:.0f} MiB stream")
    else:
        with summary.timed("build images") as notes:
            built = images.build(lambda line: out(f"    {line}"))
            notes.append(f"driver {built.driver_status}")
    # the HSMs of this run share a fleet migration key, so a guest keeps its partition context when it
    # moves to the other backend (--migrate other-backend)
    key_args = ("--migration-key", str(migration.fleet_key(workdir / "fleet-migration.key")))
    backend = BackendProcess(workdir / "hsm.sock", options.state or workdir / "state", workdir / "backend.log",
                             extra_args=key_args)
    with summary.timed("start backend") as notes:
        backend.start()
        notes.append(f"pid {backend.pid}, state {backend.state}")
    backends = [backend]
    try:
        if snapshot is not None:
            accel_name = snapshot.meta["settings"]["accel"]
        else:
            with summary.timed("choose accelerator") as notes:
                choice = accel.choose(options.accel, paths.qemu(), built.kernel, paths.qemu_firmware())
                notes.append(f"{choice.accel.upper()} ({choice.reason})")
            accel_name = choice.accel
        config = VmConfig(images=built, hsm_socket=backend.socket, workdir=workdir / "vm",
                          accel=accel_name, cpus=options.cpus, memory_mb=options.memory_mb,
                          serial=options.serial, workload=options.workload, guest_cmd=options.guest_cmd)
        if options.save_snapshot:
            _save(options, config, summary, out, echo, session)
        elif snapshot is not None:
            _from_snapshot(options, snapshot, config, summary, out, echo, session)
        else:
            _migrate(options, config, backends, workdir, summary, out, echo, session)
    finally:
        for b in backends:
            b.stop()


def _save(options: Any, config: VmConfig, summary: Summary, out: Callable[[str], None],
          echo: Any, session: Any) -> None:
    snapshot = migration.Snapshot.named(options.save_snapshot, options.snapshot_dir)
    out(f"booting ({config.accel}) to save snapshot {snapshot.directory} ...")
    started = time.monotonic()

    def ready(vm: Vm, event: dict[str, Any]) -> None:
        summary.add("boot to guest agent ready", "ok", time.monotonic() - started,
                    f"{event['at_s']:.1f} s since QEMU start, guest uptime {event['uptime_s']:.1f} s")
        session._query_device(vm, summary, config.serial)
    try:
        stats = save(snapshot, config, echo, ready)
    except Exception as exc:
        summary.add("save snapshot (migrate to file:)", "failed", time.monotonic() - started,
                    f"{type(exc).__name__}: {exc}")
        raise
    summary.add("save snapshot (migrate to file:)", "ok", stats.wall_s,
                f"{stats.note()}, {snapshot.memory.stat().st_size / 2**20:.0f} MiB file; "
                f"{snapshot.directory}")


def _from_snapshot(options: Any, snapshot: migration.Snapshot, config: VmConfig, summary: Summary,
                   out: Callable[[str], None], echo: Any, session: Any) -> None:
    out(f"restoring snapshot {snapshot.directory} ...")
    with summary.timed("restore snapshot (-incoming file:)") as notes:
        vm, seconds = restore(snapshot, config, echo)
        notes.append(f"guest running {seconds:.2f} s after QEMU start")
    try:
        with summary.timed("guest workload ready") as notes:
            start = run_workload(vm, options.workload)
            notes.append(f"{options.workload} started {start['at_s']:.2f} s after QEMU start")
        session._query_device(vm, summary, snapshot.meta["settings"]["serial"])
        session._workload(vm, summary, "")
        with summary.timed("guest powered off, QMP quit") as notes:
            vm.wait_powered_off()
            notes.append(f"QEMU exit status {vm.quit()}")
    finally:
        vm.kill()


def _migrate(options: Any, config: VmConfig, backends: list[BackendProcess], workdir: Path,
             summary: Summary, out: Callable[[str], None], echo: Any, session: Any) -> None:
    from pyhsm.host import disks
    disk = disks.create_overlay(config.images.rootfs, workdir / "disk.qcow2")
    source_config = replace(config, workdir=workdir / "source", workload="migration",
                            console_input=True, disk=disk, vmgenid="auto")
    dest_config = replace(config, workdir=workdir / "destination")
    if options.migrate == "other-backend":
        other = BackendProcess(workdir / "hsm-b.sock", workdir / "state-b", workdir / "backend-b.log",
                               extra_args=backends[0].extra_args)
        with summary.timed("start second backend (another HSM)") as notes:
            other.start()
            backends.append(other)
            notes.append(f"pid {other.pid}, serial {other_serial(config.serial)}")
        dest_config = replace(dest_config, hsm_socket=other.socket, serial=other_serial(config.serial))
    out(f"booting the source ({config.accel}) ...")
    with Vm(source_config, echo=echo) as source:
        session._boot(source, summary, BOOT_TIMEOUT_S[config.accel])
        session._query_device(source, summary, config.serial)
        record = session.step_recorder(summary)
        source.wait_for("ready", WORKLOAD_TIMEOUT_S, record)
        with summary.timed(f"live migration ({options.migrate})") as notes:
            pair = live(source, dest_config, echo)
            notes.append(pair.stats.note())
        destination = pair.destination
        try:
            with summary.timed("source after migration, QMP quit") as notes:
                notes.append(f"status {source.qmp('query-status')['status']}, exit {source.quit()}")
            session._query_device(destination, summary, dest_config.serial)
            destination.send_console(host_commands.format_command(
                host_commands.GO, note=f"migrated ({options.migrate})"))
            session._workload(destination, summary, "", record)
            with summary.timed("guest powered off, QMP quit") as notes:
                destination.wait_powered_off()
                notes.append(f"QEMU exit status {destination.quit()}")
        finally:
            destination.kill()
