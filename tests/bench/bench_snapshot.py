"""Snapshot benchmark: restore from a snapshot to "guest workload ready" vs a cold boot to the same
point, interleaved in one run; internal snapshots (savevm/loadvm) measured beside migration to a
file; live-migration downtime of a waiting guest (docs/migration.md, docs/benchmarks.md).

"Guest workload ready" is the guest agent's ``start`` report: the host's ``run`` command was read
and the workload is about to run. Cold: QEMU start, boot to the waiting agent (``ready``), ``run``,
``start``. Restore: a new disk overlay, QEMU start with ``-incoming defer``, ``migrate-incoming
file:``, ``run``, ``start``. Goal: restore <= 2 s and >= 5x faster than the cold boot (medians).

    build/venv/bin/python -m tests.bench.bench_snapshot [--rounds N] [--migrations N]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from pyhsm import paths
from pyhsm.host import accel, disks, images, migration
from pyhsm.host.backend import BackendProcess
from pyhsm.host.migration_session import live, restore, run_workload, save
from pyhsm.host.vm import BOOT_TIMEOUT_S, Vm, VmConfig

GOAL_S, GOAL_RATIO = 2.0, 5.0
WORKLOAD = "boot"      # the workload that is started; the clock stops at its start


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cold(config: VmConfig, workdir: Path) -> float:
    """QEMU start to the agent's ``start`` report, through a full boot."""
    started = time.monotonic()
    disk = disks.create_overlay(config.images.rootfs, workdir / "disk.qcow2", config.qemu)
    vm = Vm(replace(config, workdir=workdir, disk=disk, agent_wait=True, console_input=True,
                    vmgenid="auto"))
    try:
        vm.start()
        vm.wait_for("ready", BOOT_TIMEOUT_S[config.accel])
        run_workload(vm, WORKLOAD)
        return time.monotonic() - started
    finally:
        vm.kill()


def restored(snapshot: migration.Snapshot, config: VmConfig, workdir: Path) -> float:
    started = time.monotonic()
    vm, _ = restore(snapshot, replace(config, workdir=workdir))
    try:
        run_workload(vm, WORKLOAD)
        return time.monotonic() - started
    finally:
        vm.kill()


def _root_node(vm: Vm) -> str:
    for block in vm.qmp("query-block"):
        if block["device"] == "root":
            return str(block["inserted"]["node-name"])
    raise RuntimeError("no root drive in query-block")


def internal(config: VmConfig, workdir: Path, restores: int) -> tuple[float, list[float]]:
    """QEMU internal snapshot in the qcow2 overlay (snapshot-save at ``ready``), then ``-loadvm``
    restores. Returns (save seconds, restore-to-start seconds each)."""
    disk = disks.create_overlay(config.images.rootfs, workdir / "internal.qcow2", config.qemu)
    config = replace(config, disk=disk, agent_wait=True, console_input=True, vmgenid="auto")
    with Vm(replace(config, workdir=workdir / "internal-save")) as vm:
        vm.wait_for("ready", BOOT_TIMEOUT_S[config.accel])
        node = _root_node(vm)
        started = time.monotonic()
        vm.qmp("snapshot-save", **{"job-id": "save"}, tag="ready", vmstate=node, devices=[node])
        disks.wait_job(vm.qmp, "save", time.monotonic() + 300.0, "snapshot-save")
        saved = time.monotonic() - started
        vm.quit()
    times = []
    for i in range(restores):
        started = time.monotonic()
        with Vm(replace(config, workdir=workdir / f"internal-load{i}",
                        qemu_extra=("-loadvm", "ready"))) as vm:
            run_workload(vm, WORKLOAD)
            times.append(time.monotonic() - started)
    return saved, times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold boots and restores, interleaved")
    parser.add_argument("--migrations", type=int, default=3, help="live migrations of a waiting guest")
    parser.add_argument("--no-internal", dest="internal", action="store_false",
                        help="skip the savevm/loadvm measurement")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-snap-"))
    built = images.build(lambda line: None)
    private = workdir / "images"
    private.mkdir()
    for name in ("kernel", "initramfs", "rootfs"):
        shutil.copyfile(getattr(built, name), private / getattr(built, name).name)
    built = replace(built, kernel=private / built.kernel.name, initramfs=private / built.initramfs.name,
                    rootfs=private / built.rootfs.name)
    choice = accel.choose("auto", paths.qemu(), built.kernel, paths.qemu_firmware())
    print(f"accelerator: {choice.accel} ({choice.reason}); logs in {workdir}; {_load()}", flush=True)
    failures: list[str] = []
    with BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log") as backend:
        config = VmConfig(images=built, hsm_socket=backend.socket, workdir=workdir / "save",
                          accel=choice.accel, serial="AZIHSM-BENCH-SNAP", workload=WORKLOAD)
        snapshot = migration.Snapshot(workdir / "snapshot")
        started = time.monotonic()
        stats = save(snapshot, config)
        snapshot.load()
        print(f"saved (boot included) in {time.monotonic() - started:.1f} s: {stats.note()}, "
              f"file {snapshot.memory.stat().st_size / 2**20:.0f} MiB", flush=True)
        cold_s, restore_s = [], []
        for r in range(args.rounds):
            cold_s.append(cold(config, workdir / f"cold{r}"))
            restore_s.append(restored(snapshot, config, workdir / f"restore{r}"))
            print(f"round {r + 1}: cold boot {cold_s[-1]:.2f} s, restore {restore_s[-1]:.2f} s; {_load()}",
                  flush=True)
        internal_save, internal_s = (None, [])
        if args.internal:
            try:
                internal_save, internal_s = internal(config, workdir, args.rounds)
                print(f"internal snapshot: savevm {internal_save:.2f} s, -loadvm to start "
                      f"{', '.join(f'{t:.2f}' for t in internal_s)} s; {_load()}", flush=True)
            except Exception as exc:
                failures.append(f"internal snapshot: {type(exc).__name__}: {exc}")
        downtimes, totals = [], []
        vm, _ = restore(snapshot, replace(config, workdir=workdir / "mig0"))
        try:
            for m in range(args.migrations):
                pair = live(vm, replace(config, workdir=workdir / f"mig{m + 1}"))
                vm.quit()
                vm.kill()
                vm = pair.destination
                downtimes.append(pair.stats.downtime_ms)
                totals.append(pair.stats.total_ms)
                print(f"live migration {m + 1}: {pair.stats.note()}", flush=True)
            run_workload(vm, WORKLOAD)    # the guest still answers after the migrations
        except Exception as exc:
            failures.append(f"live migration: {type(exc).__name__}: {exc}")
        finally:
            vm.kill()
    cold_med, restore_med = statistics.median(cold_s), statistics.median(restore_s)
    ratio = cold_med / restore_med
    met = restore_med <= GOAL_S and ratio >= GOAL_RATIO
    rows = [f"Machine: {_cpu_model()}, {os.cpu_count()} host cores, {platform.release()}; QEMU "
            f"{choice.accel.upper()}, 2 vCPUs, 1024 MiB; {_load()} at the end.", "",
            "| measurement | result |", "|---|---|",
            f"| cold boot to guest workload ready (median of {len(cold_s)}) | {cold_med:.2f} s "
            f"({', '.join(f'{t:.2f}' for t in cold_s)}) |",
            f"| restore (migration from file) to guest workload ready (median of {len(restore_s)}) | "
            f"{restore_med:.2f} s ({', '.join(f'{t:.2f}' for t in restore_s)}) |",
            f"| snapshot save (migrate to file) | {stats.total_ms:.0f} ms, "
            f"{snapshot.memory.stat().st_size / 2**20:.0f} MiB |",
            f"| speed-up | {ratio:.1f}x |",
            f"| goal: restore <= {GOAL_S:.0f} s and >= {GOAL_RATIO:.0f}x faster | "
            f"{'met' if met else 'NOT met'} |"]
    if internal_s:
        rows.append(f"| internal snapshot (savevm {internal_save:.2f} s), -loadvm to guest workload "
                    f"ready (median of {len(internal_s)}) | {statistics.median(internal_s):.2f} s |")
    if downtimes:
        rows.append(f"| live migration of a waiting guest, same backend ({len(downtimes)}x) | downtime "
                    f"{', '.join(f'{d:.0f}' for d in downtimes)} ms; total "
                    f"{', '.join(f'{t:.0f}' for t in totals)} ms |")
    print("\n".join(rows))
    if failures:
        print("FAILED: " + "; ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
