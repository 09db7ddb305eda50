"""The state directory against its two enemies (docs/security.md): concurrency (many first power-ons at
once, restarts) and whoever copies it (everything but the chip is useless)."""

from __future__ import annotations

import shutil
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.backend.ddi.partition import Partition, StateError
from pyhsm.backend.rot import RootOfTrustFailure, power_on
from pyhsm.backend.rot.device import SILICON_FILE
from pyhsm.backend.rot.silicon import deterministic_seed, manufacture
from pyhsm.backend.server import default_backend, device_dir
from pyhsm.client import HsmClient
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.protocol.ddi.types import EccCurve
from tests.backend.ddi.ddi_backend import serving
from tests.backend.ddi.ddi_helpers import APP_ID, BK3, PIN, LocalTransport

ROUNDS = 20
PARTITIONS = 3
HELLOS_PER_PARTITION = 2


def provision_and_store(sock: Path, serial: str, index: int) -> None:
    client = HsmClient(SocketTransport(sock, serial=serial, partition=index))
    client.establish_credential(APP_ID, PIN, client.init_bk3(BK3), ec.generate_private_key(ec.SECP384R1()))
    client.open_session(APP_ID, PIN)
    client.ecc_generate_key_pair(EccCurve.P384, tag=0x100 + index)
    client.transport.close()


def concurrent_first_hellos(sock: Path, serial: str) -> list[bool]:
    """HELLOs for ``PARTITIONS`` partitions of a new device, ``HELLOS_PER_PARTITION`` each, all at once;
    each connection that is accepted provisions its partition and stores a key."""
    accepted = [False] * (PARTITIONS * HELLOS_PER_PARTITION)
    start = threading.Barrier(len(accepted))

    def hello(slot: int) -> None:
        start.wait()
        try:
            transport = SocketTransport(sock, serial=serial, partition=slot % PARTITIONS)
        except ConnectionRefusedError:      # BUSY: the partition's other connection was first
            return
        accepted[slot] = True
        transport.close()

    threads = [threading.Thread(target=hello, args=(slot,)) for slot in range(len(accepted))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for index in range(PARTITIONS):
        provision_and_store(sock, serial, index)
    return accepted


def provisioned_device(device: Path, firmware_dir: Path, serial: str) -> None:
    """Power device ``serial`` on in ``device`` and give its partition 0 a credential (persisted)."""
    identity = power_on(device, firmware_dir, serial=serial)
    client = HsmClient(LocalTransport(Partition(serial=serial, index=0, state_dir=device / "partition-0",
                                                identity=identity)))
    client.establish_credential(APP_ID, PIN, client.init_bk3(BK3), ec.generate_private_key(ec.SECP384R1()))


def test_concurrent_first_power_ons_and_restarts_lose_nothing(tmp_path: Path, firmware_dir: Path,
                                                              reliability) -> None:
    """Every round: a new device gets concurrent first HELLOs for several partitions, which are
    provisioned and store a key; then the backend restarts (a new Backend on the same state), and every
    key of every earlier round must still open."""
    state, sock = tmp_path / "state", tmp_path / "hsm.sock"
    stored: list[tuple[str, int]] = []
    hellos = 0
    for round_no in range(ROUNDS):
        serial = f"STRESS-{round_no:02d}"
        with serving(default_backend(state, firmware_dir), sock):
            accepted = concurrent_first_hellos(sock, serial)
            hellos += len(accepted)
            assert any(accepted)
            stored += [(serial, index) for index in range(PARTITIONS)]
        with serving(default_backend(state, firmware_dir), sock):
            for serial_, index in stored:
                client = HsmClient(SocketTransport(sock, serial=serial_, partition=index))
                client.open_session(APP_ID, PIN)
                assert client.open_key(0x100 + index).key_id, (serial_, index)
                client.transport.close()
    reliability.record("concurrent first power-ons", f"{ROUNDS} rounds of {PARTITIONS * HELLOS_PER_PARTITION} "
                       f"simultaneous first HELLOs, provisioning, restart", hellos,
                       f"{len(stored)} partitions, every key kept")


def test_state_files_are_private(tmp_path: Path, firmware_dir: Path) -> None:
    state = tmp_path / "state"
    provisioned_device(state / "dev", firmware_dir, "SN-PRIVATE")
    assert (state / "dev" / "partition-0" / "partition.state").exists()
    for path in (state / "dev").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_a_copy_without_the_chip_recovers_nothing(tmp_path: Path, firmware_dir: Path, reliability) -> None:
    """The attack of the hardening review: copy the state without silicon.json, re-create the chip by
    the once-documented derivation (seed = hash of the serial) and power on. It no longer works: the
    chip's secret is random, so the PUF answers differently and the helper data fails its check."""
    serial = "SN-VICTIM"
    device = tmp_path / "victim"
    provisioned_device(device, firmware_dir, serial)
    copy = tmp_path / "copy"
    shutil.copytree(device, copy, ignore=shutil.ignore_patterns(SILICON_FILE))
    manufacture(serial, seed=deterministic_seed(serial)).save(copy / SILICON_FILE)
    with pytest.raises(RootOfTrustFailure, match="check value"):
        power_on(copy, firmware_dir, serial=serial)
    for path in copy.rglob("*"):
        if path.is_file():
            assert PIN not in path.read_bytes() and PIN.hex().encode() not in path.read_bytes()
    reliability.record("copied state directory", "everything but silicon.json, chip re-derived from the serial",
                       1, "power-on refused (helper data check); no PIN or key recovered")


def test_a_foreign_chip_cannot_read_the_partitions(tmp_path: Path, firmware_dir: Path) -> None:
    """Even a chip that powers on (a fresh one, re-enrolled) cannot decrypt the copied partition state."""
    serial = "SN-VICTIM"
    device = tmp_path / "victim"
    provisioned_device(device, firmware_dir, serial)
    attacker = power_on(tmp_path / "attacker", firmware_dir, serial=serial, deterministic_silicon=True)
    with pytest.raises(StateError, match="foreign state"):
        Partition(serial=serial, index=0, state_dir=device / "partition-0", identity=attacker)


def test_device_directories_are_one_to_one_and_stay_inside_the_state(tmp_path: Path) -> None:
    names = {device_dir(tmp_path, serial).name for serial in ("AZIHSM VM7", "AZIHSM_VM7", ".", "..", "a/b")}
    assert len(names) == 5
    assert all(device_dir(tmp_path, s).parent == tmp_path / "devices" for s in (".", "..", "a/b"))


def test_a_device_directory_of_the_earlier_naming_is_taken_over(tmp_path: Path) -> None:
    legacy = tmp_path / "devices" / "AZIHSM-OLD-1"
    legacy.mkdir(parents=True)
    (legacy / "nv.json").write_text("{}")
    moved = device_dir(tmp_path, "AZIHSM-OLD-1")
    assert moved == tmp_path / "devices" / b"AZIHSM-OLD-1".hex()
    assert (moved / "nv.json").read_text() == "{}" and not legacy.exists()
