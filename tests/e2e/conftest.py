"""Fixtures for the end-to-end guest tests: images, the QEMU with azihsm, a backend, VMs under TCG.

A missing piece fails the test with a message naming it (never a skip): QEMU without the azihsm
device, images that do not build, or images built without azihsm.ko.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pyhsm import paths
from pyhsm.host import images
from pyhsm.host.backend import BackendProcess
from pyhsm.host.vm import BOOT_TIMEOUT_S, Vm, VmConfig


@pytest.fixture(scope="session")
def guest_images() -> images.GuestImages:
    """The guest images, built if stale; fails unless azihsm.ko is in them."""
    try:
        built = images.build(lambda line: None)
    except RuntimeError as exc:
        pytest.fail(f"guest images do not build: {exc}")
    if built.driver_status != "built":
        pytest.fail(f"the guest images carry no azihsm.ko ({built.driver_status})")
    return built


@pytest.fixture(scope="session")
def hsm_qemu() -> Path:
    """The project's QEMU, which must offer the azihsm device."""
    qemu = paths.qemu()
    if not qemu.exists():
        pytest.fail(f"{qemu} is missing: run `make qemu`")
    devices = subprocess.run([str(qemu), "-device", "help"], capture_output=True, text=True)
    if '"azihsm"' not in devices.stdout:
        pytest.fail(f"{qemu} has no azihsm device (qemu-device/ not built into it)")
    return qemu


@pytest.fixture
def backend(workdir: Path) -> Iterator[BackendProcess]:
    proc = BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def boot_vm(guest_images: images.GuestImages, hsm_qemu: Path, backend: BackendProcess,
            workdir: Path) -> Iterator[Callable[..., Vm]]:
    """Factory: ``boot_vm(workload, name="vm0", **VmConfig fields)`` starts a VM under TCG with the
    backend's socket and waits for its guest agent; every VM is killed at teardown (its console log
    is printed when the test failed, through pytest's captured output)."""
    started: list[Vm] = []

    def boot(workload: str, name: str = "vm0", **fields: Any) -> Vm:
        config = VmConfig(images=guest_images, hsm_socket=backend.socket, workdir=workdir / name,
                          accel="tcg", workload=workload, qemu=hsm_qemu, **fields)
        vm = Vm(config)
        started.append(vm)
        vm.start()
        boot_event = vm.wait_boot(BOOT_TIMEOUT_S["tcg"])
        print(f"{name}: guest agent up {boot_event['at_s']:.1f} s after QEMU start "
              f"(guest uptime {boot_event['uptime_s']:.1f} s, {boot_event['resets']} resets for a lost timer)")
        return vm

    yield boot
    for vm in started:
        print(f"--- console of {vm.config.workdir.name}:\n"
              f"{vm.config.console_log.read_text(errors='replace') if vm.config.console_log.exists() else ''}")
        vm.kill()
