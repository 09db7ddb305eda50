"""End-to-end: the guest kernel, azihsm.ko, the QEMU device and the backend together, under TCG."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from pyhsm.host.backend import BackendProcess
from pyhsm.host.images import GuestImages
from pyhsm.host.session import RunOptions, run
from pyhsm.host.vm import BOOT_TIMEOUT_S, HSM_ID, Vm, VmConfig, hsm_device_props
from pyhsm.protocol import console
from tests.e2e.e2e_events import assert_all_ok, expect_ok, next_step, run_to_done

pytestmark = [pytest.mark.guest, pytest.mark.qemu]

DRIVER_TIMEOUT_S = 6.0   # azihsm's abort_timeout_in_sec default (and minimum)
LOST_AT_S = 4.0          # QEMU time of the made-up lost-timer report: the kernel runs, the agent has not reported


def test_guest_boots_and_the_driver_binds(boot_vm: Callable[..., Vm]) -> None:
    vm = boot_vm("boot", serial="AZIHSM-E2E-BOOT", guest_cmd="lspci -nn -d 1414:c003 && dmesg")
    events = run_to_done(vm)
    details = assert_all_ok(events)
    assert details["driver bound"]["node"] == "/dev/azihsm0"
    [cmd] = [e for e in events if e["event"] == "cmd"]
    assert cmd["rc"] == 0, "lspci/dmesg failed in the guest"
    console = vm.config.console_log.read_text(errors="replace")
    assert "[1414:c003]" in console, "lspci in the guest does not list the HSM"
    assert "serial 'AZIHSM-E2E-BOOT'" in console, "the driver did not log the device's serial"


def test_a_boot_that_lost_a_timer_is_reset_and_boots_again(
        guest_images: GuestImages, hsm_qemu: Path, backend: BackendProcess, workdir: Path) -> None:
    """The launcher's answer to a guest kernel that reports a lost vCPU timer before the guest agent's
    first report (docs/running.md). The fault cannot be caused on purpose, so its console report is
    queued as the console reader would queue it, while the real guest is booting. The machine is
    really reset through QMP: the kernel that then reports started after the reset, and the boot
    event says one reset was needed."""
    config = VmConfig(images=guest_images, hsm_socket=backend.socket, workdir=workdir / "vm0",
                      accel="tcg", workload="boot", qemu=hsm_qemu)
    with Vm(config) as vm:
        time.sleep(max(0.0, vm.started_at + LOST_AT_S - time.monotonic()))
        vm.events.put({"event": "lost-timer", "at_s": LOST_AT_S,
                       "line": "rcu: rcu_preempt kthread timer wakeup didn't happen for 5249 jiffies!"})
        boot = vm.wait_boot(BOOT_TIMEOUT_S["tcg"])
        assert (boot["boot"], boot["resets"]) == (1, 1), boot
        kernel_start_s = boot["at_s"] - boot["uptime_s"]      # QEMU time at which that kernel started
        assert kernel_start_s >= LOST_AT_S - 0.5, f"the guest was not reset: {boot}"


def test_pyhsm_run_default_workload_passes(guest_images: GuestImages, hsm_qemu: Path) -> None:
    lines: list[str] = []
    status = run(RunOptions(accel="tcg"), out=lines.append)
    summary = "\n".join(lines)
    assert status == 0, summary
    passed = {line.split(" s  ", 1)[1].split("  ")[0] for line in lines
              if line.startswith(f"  {console.OK} ") and " s  " in line}
    assert {"guest: sign digest", "host: verify signature", "guest: attest key",
            "after reset: guest: GetApiRev"} <= passed, summary


def test_closing_a_descriptor_frees_its_session(boot_vm: Callable[..., Vm]) -> None:
    assert_all_ok(run_to_done(boot_vm("fd_close")))


def test_backend_crash_fails_commands_in_time_and_restart_recovers(
        boot_vm: Callable[..., Vm], backend: BackendProcess) -> None:
    vm = boot_vm("backend_kill")
    expect_ok(next_step(vm), "driver bound")
    expect_ok(next_step(vm), "GetApiRev before the kill")
    backend.kill()
    failed = expect_ok(next_step(vm), "GetApiRev fails while the backend is down")
    assert failed["failing_call_s"] <= DRIVER_TIMEOUT_S + 2.0, failed
    backend.start()
    expect_ok(next_step(vm), "GetApiRev works after the restart")
    done = vm.wait_for("done", 60)
    assert done["ok"], "the guest agent did not finish cleanly after the backend came back"


def test_hot_unplug_and_replug_of_the_hsm(boot_vm: Callable[..., Vm]) -> None:
    vm = boot_vm("hotplug")
    expect_ok(next_step(vm), "driver bound")
    vm.qmp("device_del", id=HSM_ID)
    expect_ok(next_step(vm), "unbound after device_del")
    deadline = time.monotonic() + 30
    while vm.hsm_functions():
        assert time.monotonic() < deadline, "QEMU still lists the HSM 30 s after the guest let go"
        time.sleep(0.2)
    vm.qmp("device_add", **hsm_device_props(vm.config))
    for step in ("bound after device_add", "GetApiRev on the new device", "kernel log clean"):
        expect_ok(next_step(vm), step)
    assert vm.wait_for("done", 60)["ok"]


def test_two_vms_on_one_backend_have_separate_partitions(
        boot_vm: Callable[..., Vm], backend: BackendProcess) -> None:
    first = boot_vm("isolation", name="vm-a", serial="AZIHSM-E2E-000A")
    second = boot_vm("isolation", name="vm-b", serial="AZIHSM-E2E-000B")
    log = backend.log.read_text()
    for serial in ("AZIHSM-E2E-000A", "AZIHSM-E2E-000B"):
        assert f"device {serial} partition 0 connected" in log, f"{serial} never reached the backend"
    details = [assert_all_ok(run_to_done(vm)) for vm in (first, second)]
    for detail in details:
        assert detail["establish credential"]["credential"] == "established", \
            "a VM found its partition already provisioned: partitions are shared"
    keys = [d["create key with the shared tag"]["public_sha256"] for d in details]
    assert keys[0] != keys[1]


def test_boot_through_ovmf(boot_vm: Callable[..., Vm]) -> None:
    vm = boot_vm("boot", firmware="ovmf", guest_cmd="test -d /sys/firmware/efi")
    events = run_to_done(vm)
    assert_all_ok(events)
    [cmd] = [e for e in events if e["event"] == "cmd"]
    assert cmd["rc"] == 0, "the guest did not boot through UEFI (no /sys/firmware/efi)"


def test_interactive_run_gives_a_shell_on_the_console_socket(guest_images: GuestImages,
                                                             hsm_qemu: Path) -> None:
    launcher = subprocess.Popen([sys.executable, "-m", "pyhsm.cli", "run", "--interactive",
                                 "--accel", "tcg", "--workload", "boot"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert launcher.stdout is not None
        console_path = next((line.split(": ", 1)[1].strip() for line in launcher.stdout
                             if line.startswith("serial console: ")), None)
        assert console_path, "pyhsm run --interactive did not print its console socket"
        with socket.socket(socket.AF_UNIX) as console:
            console.connect(console_path)
            seen = _read_until(console, b'"event":"done"', 300)
            assert b'"event":"done"' in seen, seen[-500:]
            time.sleep(2)
            console.sendall(b"\recho shell-$((6*7))\r")
            assert b"shell-42" in _read_until(console, b"shell-42", 60)
            console.sendall(b"busybox poweroff -f\r")
            try:   # keep the console open until the launcher is done
                output, _ = launcher.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                pytest.fail("the launcher did not finish within 120 s of the guest's poweroff")
        assert launcher.returncode == 0, output
        assert "interactive session (not graded)" in output
    finally:
        launcher.kill()


def _read_until(sock: socket.socket, marker: bytes, timeout: float) -> bytes:
    sock.settimeout(0.5)
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        try:
            seen += sock.recv(4096)
        except socket.timeout:
            continue
    return seen
