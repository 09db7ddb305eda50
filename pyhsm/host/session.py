"""One ``pyhsm run``: images, backend, accelerator, boot, QMP checks, workload, reset, quit.

Every step lands in a ``Summary`` as it completes; the run's verdict is the summary's. Logs (console,
QEMU stderr, backend) stay in the run directory, which the summary names.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pyhsm import paths
from pyhsm.host import accel, images, verify
from pyhsm.host.backend import BackendProcess
from pyhsm.host.confidential import launch as confidential
from pyhsm.host.confidential import session as confidential_session
from pyhsm.host.summary import Summary
from pyhsm.host.vm import BOOT_TIMEOUT_S, HSM_ID, WORKLOAD_TIMEOUT_S, Vm, VmConfig
from pyhsm.protocol import console
from pyhsm.tools.inspect.run_debug import TOOLS_QMP, DebugRun


@dataclass(frozen=True)
class RunOptions:
    cpus: int = 2
    memory_mb: int = 1024
    state: Path | None = None
    guest_cmd: str | None = None
    interactive: bool = False
    verbose: bool = False
    firmware: str = "direct"
    accel: str = "auto"
    serial: str = "AZIHSM-VM0-0001"
    workload: str = "default"
    reset: bool = True
    debug: bool = False                  # memory file, nokaslr, traces; keep QEMU after the workload
    gdb_port: int | None = None          # QEMU's gdb stub on 127.0.0.1:PORT
    save_snapshot: str | None = None     # boot to "guest agent ready", save as NAME (docs/migration.md)
    from_snapshot: str | None = None     # start from snapshot NAME and run the workload
    snapshot_dir: Path | None = None     # where snapshots live (default: build/snapshots)
    migrate: str | None = None           # "same" / "other-backend": live-migrate the migration workload


def _print(line: str) -> None:
    print(line, flush=True)


def run(options: RunOptions, out: Callable[[str], None] = _print) -> int:
    """Run end to end; returns 0 only when every step passed."""
    workdir = Path(tempfile.mkdtemp(prefix="pyhsm-run-"))
    out(f"pyhsm run: logs in {workdir}")
    summary = Summary(out)
    try:
        _run(options, workdir, summary, out)
    except Exception as exc:  # the failed step is already in the summary; say why once more
        out(f"stopped: {exc}")
    out(summary.table())
    out(f"logs: {workdir} (console.log, qemu.stderr, backend.log)")
    return 0 if summary.ok else 1


def _run(options: RunOptions, workdir: Path, summary: Summary, out: Callable[[str], None]) -> None:
    if options.save_snapshot or options.from_snapshot or options.migrate:
        from pyhsm.host import migration_session
        migration_session.run(options, workdir, summary, out)
        return
    with summary.timed("build images") as notes:
        built = images.build(lambda line: out(f"    {line}"))
        notes.append(f"driver {built.driver_status}")
    debug = DebugRun(workdir, options.memory_mb, options.debug, options.gdb_port)
    backend = BackendProcess(workdir / "hsm.sock", options.state or workdir / "state",
                             workdir / "backend.log", extra_args=debug.backend_args())
    with summary.timed("start backend") as notes:
        backend.start()
        notes.append(f"pid {backend.pid}, state {backend.state}")
    try:
        with summary.timed("choose accelerator") as notes:
            choice = accel.choose(options.accel, paths.qemu(), built.kernel, paths.qemu_firmware())
            notes.append(f"{choice.accel.upper()} ({choice.reason})")
        if options.workload in confidential_session.WORKLOADS and not options.interactive:
            _confidential(options, built, backend, choice.accel, workdir, summary, out)
            return
        config = VmConfig(images=built, hsm_socket=backend.socket, workdir=workdir,
                          accel=choice.accel, cpus=options.cpus, memory_mb=options.memory_mb,
                          firmware=options.firmware, serial=options.serial,
                          workload=options.workload, guest_cmd=options.guest_cmd,
                          interactive=options.interactive, cmdline_extra=debug.kernel_cmdline,
                          qemu_extra=debug.qemu_args())
        with Vm(config, echo=(lambda line: out(f"    | {line}")) if options.verbose else None) as vm:
            out(f"booting ({choice.accel}, {options.firmware}) ...")
            out(f"QMP for tools: {workdir / TOOLS_QMP} (pyhsm qmp {workdir} hsm-state)")
            if options.interactive:
                with summary.timed("interactive session (not graded)") as notes:
                    notes.append(f"QEMU exit status {_interactive(vm, out)}")
                return
            _boot(vm, summary, BOOT_TIMEOUT_S[choice.accel])
            _query_device(vm, summary, options.serial)
            _workload(vm, summary, "")
            if options.debug:
                _keep_for_debugging(vm, debug, backend, out)
                return
            if options.reset:
                with summary.timed("guest powered off, QMP system_reset"):
                    vm.wait_powered_off()
                    vm.reset()
                _boot(vm, summary, BOOT_TIMEOUT_S[choice.accel], "after reset: ")
                _workload(vm, summary, "after reset: ")
            with summary.timed("guest powered off, QMP quit") as notes:
                vm.wait_powered_off()
                notes.append(f"QEMU exit status {vm.quit()}")
    finally:
        backend.stop()


def _confidential(options: RunOptions, built: images.GuestImages, backend: BackendProcess,
                  accel_name: str, workdir: Path, summary: Summary, out: Callable[[str], None]) -> None:
    """The confidential workloads: OVMF, vTPM and data disk, provisioned by the host first."""
    config = confidential.vm_config(built, backend, workdir, accel_name, options.workload,
                                    options.serial, cpus=options.cpus, memory_mb=options.memory_mb)
    out(f"booting ({accel_name}, ovmf, vTPM, LUKS2 data disk) ...")
    confidential_session.run_vm(config, backend, backend.state / "fabric-owner.pem", summary, out,
                                echo=(lambda line: out(f"    | {line}")) if options.verbose else None)


def _boot(vm: Vm, summary: Summary, timeout: float, prefix: str = "") -> None:
    with summary.timed(f"{prefix}boot to guest agent") as notes:
        boot = vm.wait_boot(timeout)
        notes.append(f"boot {boot['boot']}, {boot['at_s']:.1f} s since QEMU start, "
                     f"guest uptime {boot['uptime_s']:.1f} s"
                     + (f", after {boot['resets']} reset(s) for a vCPU timer the guest lost" if boot["resets"] else ""))


def _query_device(vm: Vm, summary: Summary, serial: str) -> None:
    with summary.timed("QMP: HSM on PCI, serial") as notes:
        functions = vm.hsm_functions()
        if len(functions) != 1:
            raise RuntimeError(f"query-pci shows {len(functions)} HSM functions, expected 1")
        got = vm.qmp("qom-get", path=f"/machine/peripheral/{HSM_ID}", property="serial")
        if got != serial:
            raise RuntimeError(f"qom-get serial is {got!r}, expected {serial!r}")
        f = functions[0]
        notes.append(f"{f['bus']:02x}:{f['slot']:02x}.{f['function']} 1414:c003 serial {got}")


def step_recorder(summary: Summary, prefix: str = "") -> Callable[[dict[str, Any]], None]:
    """The guest's step events as summary rows; every reported signature verified here."""
    def seen(event: dict[str, Any]) -> None:
        if event["event"] == "step":
            note = event.get("error") or _short(event.get("detail", {}))
            summary.add(f"{prefix}guest: {event['name']}", event["result"],
                        event.get("ms", 0) / 1000, note)
            if event["result"] == console.OK and "signature" in event.get("detail", {}):
                started = time.monotonic()
                try:
                    note = verify.verify_p384_signature(event["detail"])
                    summary.add(f"{prefix}host: verify signature", console.OK,
                                time.monotonic() - started, note)
                except Exception as exc:
                    summary.add(f"{prefix}host: verify signature", console.FAILED,
                                time.monotonic() - started, f"{type(exc).__name__}: {exc}")
        elif event["event"] == "cmd":
            summary.add(f"{prefix}guest command", console.OK if event["rc"] == 0 else console.FAILED,
                        event["ms"] / 1000, f"exit status {event['rc']}")
    return seen


def _workload(vm: Vm, summary: Summary, prefix: str,
              seen: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Turn the guest's step events into summary rows until ``done``; verify signatures here."""
    done = vm.wait_for("done", WORKLOAD_TIMEOUT_S, seen or step_recorder(summary, prefix))
    if not done["ok"] and done.get("error"):
        summary.add(f"{prefix}guest workload", console.FAILED, 0.0, done["error"])
    return done


def _short(detail: dict[str, Any], limit: int = 90) -> str:
    text = ", ".join(f"{k}={v}" for k, v in detail.items() if k not in ("signature", "public_key_der"))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _interactive(vm: Vm, out: Callable[[str], None]) -> int:
    """Wait while the user works on the console socket; returns QEMU's exit status."""
    out(f"serial console: {vm.config.console_socket}")
    out(f"  attach with: socat -,raw,echo=0,escape=0x1d UNIX-CONNECT:{vm.config.console_socket}")
    out(f"  QMP: {vm.config.qmp_socket}; Ctrl-C here stops the VM")
    try:
        while vm.qmp("query-status")["status"] != "shutdown":
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    return vm.quit()


def _keep_for_debugging(vm: Vm, debug: DebugRun, backend: BackendProcess,
                        out: Callable[[str], None]) -> None:
    """--debug: keep QEMU (and the guest's memory) after the workload until Ctrl-C or until QEMU
    is quit from outside (``pyhsm qmp RUN quit``)."""
    out(f"kept for debugging; backend pid {backend.pid}")
    debug.explain(out)
    try:
        while True:
            vm.qmp("query-status")      # raises once QEMU is gone
            time.sleep(1)
    except KeyboardInterrupt:
        vm.quit()
    except Exception:  # QEMU was quit from outside: nothing left to stop
        pass
