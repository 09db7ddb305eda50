"""CI snapshots (docs/migration.md): a ready guest saved once (migration to a file, the guest
agent waiting, the HSM idle) and restored 20 times, each restore on its own disk overlay running the
sign workload to a host-verified signature; the backend's side of a restore (the HSM presents the
post-migration state: the credential of the previous restore is gone); a changed image refuses the
restore."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from pyhsm.host import migration, verify
from pyhsm.host.backend import BackendProcess
from pyhsm.host.images import GuestImages
from pyhsm.host.migration_session import restore, run_workload, save
from pyhsm.host.vm import VmConfig
from tests.e2e.e2e_events import assert_all_ok, run_to_done

pytestmark = [pytest.mark.guest, pytest.mark.qemu]

RESTORES = 20
SERIAL = "AZIHSM-E2E-SNAP"


@pytest.fixture
def private_images(guest_images: GuestImages, workdir: Path) -> GuestImages:
    """A private copy of the images: a rebuild of build/images by someone else during the test must
    not change the snapshot's backing file under it."""
    out = workdir / "images"
    out.mkdir()
    copies = {}
    for name in ("kernel", "initramfs", "rootfs"):
        source = getattr(guest_images, name)
        copies[name] = out / source.name
        shutil.copyfile(source, copies[name])
    return replace(guest_images, **copies)


@pytest.fixture
def snapshot(private_images: GuestImages, hsm_qemu: Path, backend: BackendProcess,
             workdir: Path) -> Iterator[tuple[migration.Snapshot, VmConfig]]:
    config = VmConfig(images=private_images, hsm_socket=backend.socket, workdir=workdir / "save",
                      accel="tcg", serial=SERIAL, workload="sign", qemu=hsm_qemu)
    snap = migration.Snapshot(workdir / "snapshots" / "ready")
    started = time.monotonic()
    stats = save(snap, config)
    print(f"saved in {time.monotonic() - started:.1f} s (boot included): {stats.note()}, "
          f"{snap.memory.stat().st_size / 2**20:.0f} MiB")
    yield snap.load(), config


def test_snapshot_restored_20_times_runs_the_workload_each_time(
        snapshot: tuple[migration.Snapshot, VmConfig], private_images: GuestImages,
        hsm_qemu: Path, workdir: Path) -> None:
    snap, config = snapshot
    snap.check(private_images, hsm_qemu)
    saved_disk = (snap.disk.stat().st_size, snap.disk.stat().st_mtime_ns)
    digests, to_ready = set(), []
    for attempt in range(RESTORES):
        started = time.monotonic()
        vm, _ = restore(snap, replace(config, workdir=workdir / f"restore{attempt}"))
        try:
            if attempt == 0:   # a real machine before any command: running, the HSM on PCI
                assert vm.qmp("query-status")["status"] == "running"
                assert len(vm.hsm_functions()) == 1
            start = run_workload(vm, "sign")
            to_ready.append(time.monotonic() - started)
            steps = assert_all_ok(run_to_done(vm))
            vm.wait_powered_off()
            assert vm.quit() == 0
        except Exception:
            print(vm.config.console_log.read_text(errors="replace"))
            raise
        finally:
            vm.kill()
        assert start["workload"] == "sign"
        verify.verify_p384_signature(steps["sign digest"])
        # every restore finds the HSM after an NSSR: the previous restore's credential is gone
        assert steps["establish credential"]["credential"] == "established", (attempt, steps)
        digests.add(steps["sign digest"]["digest"])
    print(f"restore to workload start: min {min(to_ready):.2f} s, max {max(to_ready):.2f} s over {RESTORES}")
    # vmgenid: each restore gets a new generation id, the guest kernel reseeds its RNG, so the
    # guest's random digests differ although every restore starts from the same memory
    assert len(digests) == RESTORES, f"only {len(digests)} distinct guest digests in {RESTORES} restores"
    assert (snap.disk.stat().st_size, snap.disk.stat().st_mtime_ns) == saved_disk, \
        "a restore wrote to the snapshot's disk"


def test_restore_refuses_changed_images(guest_images: GuestImages, hsm_qemu: Path,
                                        workdir: Path) -> None:
    images = replace(guest_images, rootfs=workdir / "rootfs.ext4")
    images.rootfs.write_bytes(b"rootfs")
    snap = migration.Snapshot(workdir / "snap", migration.stamps(images, hsm_qemu))
    snap.check(images, hsm_qemu)
    images.rootfs.write_bytes(b"rootfs, rebuilt")
    with pytest.raises(RuntimeError, match="rootfs"):
        snap.check(images, hsm_qemu)


def test_missing_snapshot_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="snapshot.json is missing"):
        migration.Snapshot(tmp_path / "none").load()
    with pytest.raises(ValueError):
        migration.Snapshot.named("../escape")


def test_pyhsm_run_saves_and_restores_a_snapshot(guest_images: GuestImages, hsm_qemu: Path,
                                                 workdir: Path) -> None:
    """The command-line path: ``--save-snapshot`` then ``--from-snapshot`` with the sign workload."""
    from pyhsm.host.session import RunOptions, run
    saved: list[str] = []
    assert run(RunOptions(accel="tcg", save_snapshot="ci", snapshot_dir=workdir),
               out=saved.append) == 0, "\n".join(saved)
    assert (workdir / "ci" / "memory.mig").stat().st_size > 1 << 20
    restored: list[str] = []
    assert run(RunOptions(accel="tcg", from_snapshot="ci", snapshot_dir=workdir, workload="sign"),
               out=restored.append) == 0, "\n".join(restored)
    summary = "\n".join(restored)
    for row in ("restore snapshot (-incoming file:)", "guest workload ready", "guest: sign digest",
                "host: verify signature"):
        assert any(row in line and line.lstrip().startswith("ok ") for line in restored), (row, summary)
    missing: list[str] = []
    assert run(RunOptions(from_snapshot="absent", snapshot_dir=workdir), out=missing.append) == 1
    assert any("snapshot.json is missing" in line for line in missing), "\n".join(missing)
