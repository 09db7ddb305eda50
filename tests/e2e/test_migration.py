"""Live migration of a real guest between two QEMU processes (docs/migration.md): the migration
workload's key survives through the masked-key / ReopenSession flow, on the same backend and on
another one (another physical HSM); a refused stream names its reason and leaves the source
running; a destination whose backend is missing fails commands quickly and recovers when it starts."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from pyhsm.client import host_commands
from pyhsm.host import disks, migration, verify
from pyhsm.host.backend import BackendProcess
from pyhsm.host.images import GuestImages
from pyhsm.host.migration_session import Pair, live, other_serial, run_workload
from pyhsm.host.vm import BOOT_RESETS, BOOT_TIMEOUT_S, HSM_ID, Vm, VmConfig
from tests.e2e.e2e_events import assert_all_ok, run_to_done

pytestmark = [pytest.mark.guest, pytest.mark.qemu]


SERIAL = "AZIHSM-E2E-MIG"
QUICK_MS = 2000            # a failed command without a backend (the driver's own timeout is 6 s)


@pytest.fixture
def vms() -> Iterator[list[Vm]]:
    started: list[Vm] = []
    yield started
    for vm in started:
        if vm.config.console_log.exists():
            print(f"--- console of {vm.config.workdir.name}:\n{vm.config.console_log.read_text(errors='replace')}")
        vm.kill()


@pytest.fixture
def source_config(guest_images: GuestImages, hsm_qemu: Path, backend: BackendProcess,
                  workdir: Path) -> VmConfig:
    disk = disks.create_overlay(guest_images.rootfs, workdir / "disk.qcow2", hsm_qemu)
    return VmConfig(images=guest_images, hsm_socket=backend.socket, workdir=workdir / "source",
                    accel="tcg", serial=SERIAL, workload="migration", qemu=hsm_qemu,
                    console_input=True, disk=disk, vmgenid="auto")


def _boot(vms: list[Vm], config: VmConfig, ready: bool = True) -> tuple[Vm, list[dict[str, Any]]]:
    vm = Vm(config)
    vms.append(vm)
    vm.start()
    events: list[dict[str, Any]] = []
    events.append(vm.wait_for("ready", BOOT_TIMEOUT_S["tcg"], events.append, resets=BOOT_RESETS))
    return vm, events


def _migrate(vms: list[Vm], source: Vm, dest_config: VmConfig) -> Pair:
    pair = live(source, dest_config)
    vms.append(pair.destination)
    print(f"migration: {pair.stats.note()}")
    assert source.qmp("query-status")["status"] == "postmigrate"
    assert pair.destination.qmp("query-status")["status"] == "running"
    assert 0 < pair.stats.downtime_ms < 10_000 and pair.stats.total_ms >= pair.stats.downtime_ms
    source.quit()
    return pair


def _signatures_match(before: dict[str, Any], after: dict[str, Any]) -> None:
    """Both signatures verify on the host with the public key reported before the migration."""
    public = before["sign before migration"]["public_key_der"]
    verify.verify_p384_signature(before["sign before migration"])
    verify.verify_p384_signature({**after["sign after migration"], "public_key_der": public})
    assert after["unmask key"]["same_public_key"] is True


def _recovered(before: dict[str, Any], after: dict[str, Any]) -> None:
    """The guest recovered as the vendor's flow says (old session refused, credential re-established
    with the saved masked BK3, the same session id reopened) and its key signs as before."""
    assert after["old session after migration"]["old_session"] == "SessionNeedsRenegotiation"
    assert after["re-establish credential"] == {"credential": "saved masked BK3", "same_bmk": True}
    assert after["reopen session"]["reopened"] is True and after["reopen session"]["same_id"] is True
    _signatures_match(before, after)


def test_live_migration_on_the_same_backend_keeps_the_key(
        vms: list[Vm], source_config: VmConfig, workdir: Path) -> None:
    source, before_events = _boot(vms, source_config)
    before = assert_all_ok(before_events + [{"event": "done", "ok": True}])
    pair = _migrate(vms, source, replace(source_config, workdir=workdir / "destination"))
    pair.destination.send_console(host_commands.format_command(host_commands.GO))
    after = assert_all_ok(run_to_done(pair.destination))
    _recovered(before, after)


def test_live_migration_to_another_backend_keeps_the_session_and_the_key(
        vms: list[Vm], source_config: VmConfig, workdir: Path) -> None:
    # two HSMs of one fleet: they share the fleet migration key, so the partition's context (session
    # mask, BK boot, sealed BK3) travels in the stream and the guest recovers as on the same HSM
    key = ("--migration-key", str(migration.fleet_key(workdir / "fleet-migration.key")))
    with BackendProcess(workdir / "hsm-a.sock", workdir / "state-a", workdir / "backend-a.log", key) as first, \
            BackendProcess(workdir / "hsm-b.sock", workdir / "state-b", workdir / "backend-b.log", key) as other:
        source, before_events = _boot(vms, replace(source_config, hsm_socket=first.socket))
        before = assert_all_ok(before_events + [{"event": "done", "ok": True}])
        dest = replace(source_config, workdir=workdir / "destination", hsm_socket=other.socket,
                       serial=other_serial(SERIAL))
        pair = _migrate(vms, source, dest)
        assert pair.destination.qmp("qom-get", path=f"/machine/peripheral/{HSM_ID}",
                                    property="serial") == other_serial(SERIAL)
        pair.destination.send_console(host_commands.format_command(host_commands.GO))
        after = assert_all_ok(run_to_done(pair.destination))
        assert pair.destination.qmp("qom-get", path=f"/machine/peripheral/{HSM_ID}",
                                    property="migration-context") == "accepted"
    _recovered(before, after)


def test_a_refused_stream_names_the_reason_and_the_source_keeps_running(
        vms: list[Vm], source_config: VmConfig, workdir: Path) -> None:
    source, _ = _boot(vms, replace(source_config, agent_wait=True))
    dest = replace(source_config, workdir=workdir / "destination", res_cnt=2)
    started = time.monotonic()
    with pytest.raises(migration.MigrationError) as refused:
        live(source, dest)
    print(f"refused in {time.monotonic() - started:.2f} s: {refused.value}")
    assert "res-cnt" in str(refused.value), refused.value
    assert source.qmp("query-status")["status"] == "running"
    run_workload(source, "sign")
    assert_all_ok(run_to_done(source))


def test_missing_backend_on_the_destination_fails_fast_then_recovers(
        vms: list[Vm], source_config: VmConfig, workdir: Path) -> None:
    other = BackendProcess(workdir / "hsm-b.sock", workdir / "state-b", workdir / "backend-b.log")
    source, before_events = _boot(vms, source_config)
    before = assert_all_ok(before_events + [{"event": "done", "ok": True}])
    pair = _migrate(vms, source, replace(source_config, workdir=workdir / "destination",
                                         hsm_socket=other.socket))
    pair.destination.send_console(host_commands.format_command(host_commands.GO))
    time.sleep(8.0)          # the guest's commands fail meanwhile: no backend
    try:
        other.start()
        after = assert_all_ok(run_to_done(pair.destination))
    finally:
        other.stop()
    attempts = after["old session after migration"]["failed_attempts"]
    print(f"failed attempts while the backend was missing: {attempts}")
    assert attempts, "no command failed while the destination had no backend"
    # quick: the device answers link-down at once (0x701), nowhere near the driver's 6 s timeout
    assert max(a["ms"] for a in attempts) <= QUICK_MS, attempts
    assert all("device status" in a["error"] for a in attempts), attempts
    _signatures_match(before, after)


def test_other_serial_is_another_device() -> None:
    assert other_serial("AZIHSM-VM0-0001") == "AZIHSM-VM0-0001-B"
    assert other_serial("AZIHSM-VM0-0001-B") == "AZIHSM-VM0-0001-C"
    assert len(other_serial("X" * 32)) <= 32


def test_pyhsm_run_migrate_reports_downtime_and_passes() -> None:
    """The command-line path: ``pyhsm run --migrate same`` grades the workload on both sides."""
    from pyhsm.host.session import RunOptions, run
    lines: list[str] = []
    assert run(RunOptions(accel="tcg", migrate="same"), out=lines.append) == 0, "\n".join(lines)
    lines = "\n".join(lines).splitlines()       # the summary table comes as one string
    rows = [line for line in lines if "live migration (same)" in line]
    assert rows and rows[-1].lstrip().startswith("ok ") and "downtime" in rows[-1], "\n".join(lines)
    assert any("guest: sign after migration" in line and line.lstrip().startswith("ok ")
               for line in lines), "\n".join(lines)
