"""Rollback protection of partition state (docs/security.md): an older state file, put back in place of
the current one, is refused; PIN lockout, deletions, PIN changes and CVM owner sequence numbers therefore
survive every replay attempt. An interrupted save (file written, counter not yet advanced) is completed,
and a state file of the earlier unversioned format is taken over once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyhsm.backend.ddi.partition import Partition
from pyhsm.backend.ddi.store import FILE_NAME, KEY_LABEL, MAGIC_V1, StateError
from pyhsm.backend.rot import power_on
from pyhsm.client import HsmClient
from pyhsm.protocol.ddi.schemas_vendor import VendorStatus
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import EccCurve
from tests.backend.cvm.cvm_setup import set_up
from tests.backend.ddi.ddi_helpers import APP_ID, PIN, LocalTransport, Provisioned, expect
from tests.backend.ddi.ddi_identity import TestIdentity


def restart(hsm: Provisioned) -> HsmClient:
    old = hsm.partition
    return HsmClient(LocalTransport(Partition(serial=old.serial, index=old.index,
                                              state_dir=old._store.path.parent, identity=old._identity)))


def lock_out(hsm: Provisioned) -> None:
    client = hsm.another_client()
    for _ in range(5):
        expect(DdiStatus.InvalidAppCredentials, client.open_session, APP_ID, b"wrong-pin-000000")
    expect(DdiStatus.LoginFailed, client.open_session, APP_ID, PIN)


def delete_a_key(hsm: Provisioned) -> None:
    key = hsm.client.ecc_generate_key_pair(EccCurve.P384, tag=0x77)
    hsm.state_before = hsm.partition._store.path.read_bytes()
    hsm.client.delete_key(key.private_key_id)


def change_pin(hsm: Provisioned) -> None:
    hsm.client.change_pin(b"new-pin-00000000")


def advance_owner_sequence(hsm: Provisioned) -> None:
    cvm = set_up(hsm)
    hsm.state_before = hsm.partition._store.path.read_bytes()
    seq = cvm.next_seq()
    hsm.replayed = lambda client: client.cvm_register_vm(cvm.owner_key, seq, b"vm-c", cvm.vm_a.ek_public,
                                                         cvm.vm_a.ak_public)
    hsm.replayed(hsm.client)     # accepted once


CHANGES: dict[str, Callable[[Provisioned], None]] = {
    "pin-lockout": lock_out, "key-deletion": delete_a_key, "pin-change": change_pin,
    "cvm-owner-sequence": advance_owner_sequence,
}


@pytest.mark.parametrize("change", CHANGES)
def test_an_older_state_file_is_refused(hsm: Provisioned, change: str, reliability) -> None:
    state = hsm.partition._store.path
    hsm.state_before = state.read_bytes()
    CHANGES[change](hsm)
    assert state.read_bytes() != hsm.state_before
    state.write_bytes(hsm.state_before)          # the replay: an older copy put back
    with pytest.raises(StateError, match="rolled back or replayed"):
        restart(hsm)
    reliability.record("replayed partition state file", f"older state put back after {change}", 1,
                       "refused at load; the change stands")


def test_the_current_state_file_still_loads_after_each_change(hsm: Provisioned) -> None:
    lock_out(hsm)
    expect(DdiStatus.LoginFailed, restart(hsm).open_session, APP_ID, PIN)


def test_a_replayed_owner_command_stays_refused_across_restarts(hsm: Provisioned) -> None:
    advance_owner_sequence(hsm)
    client = restart(hsm)
    client.open_session(APP_ID, PIN)
    expect(VendorStatus.CvmOwnerSequenceReplayed, hsm.replayed, client)


def test_an_interrupted_save_is_completed_at_the_next_load(hsm: Provisioned, monkeypatch) -> None:
    counters = hsm.partition._identity.counters
    name = f"partition-{hsm.partition.index}"
    before = counters.value(name)

    def crash(*args: object) -> None:
        raise OSError("power lost before the counter was written")
    monkeypatch.setattr(counters, "_persist", crash)
    with pytest.raises(Exception):
        hsm.client.ecc_generate_key_pair(EccCurve.P384, tag=0x55)   # state written, counter not
    monkeypatch.undo()
    assert counters.value(name) == before
    client = restart(hsm)
    assert counters.value(name) == before + 1
    client.open_session(APP_ID, PIN)
    assert client.open_key(0x55).key_id


def test_a_state_file_ahead_of_the_counter_by_more_than_one_is_refused(hsm: Provisioned) -> None:
    hsm.client.ecc_generate_key_pair(EccCurve.P384, tag=0x56)
    same_device_counters_at_zero = TestIdentity()
    with pytest.raises(StateError, match="rolled back or replayed"):
        Partition(serial=hsm.partition.serial, index=0, state_dir=hsm.partition._store.path.parent,
                  identity=same_device_counters_at_zero)


def _format_1_file(identity, serial: str, index: int, state: dict) -> bytes:
    """A state file as the earlier, unversioned format wrote it."""
    nonce = os.urandom(12)
    aead = AESGCM(identity.at_rest_key(KEY_LABEL))
    body = MAGIC_V1 + nonce + aead.encrypt(nonce, json.dumps(state).encode(), MAGIC_V1 + f"{serial}/{index}".encode())
    return body + hashlib.sha256(body).digest()


def test_a_format_1_state_file_is_taken_over_once(tmp_path: Path, firmware_dir: Path) -> None:
    identity = power_on(tmp_path / "dev", firmware_dir, serial="SN-MIGRATE")
    first = Partition(serial="SN-MIGRATE", index=0, state_dir=tmp_path / "p0", identity=identity)
    client = HsmClient(LocalTransport(first))
    client.init_bk3(bytes(48))
    snapshot = first.vault.snapshot()
    old = _format_1_file(identity, "SN-MIGRATE", 0, snapshot)
    (tmp_path / "p1").mkdir()
    (tmp_path / "p1" / FILE_NAME).write_bytes(old)
    migrated = Partition(serial="SN-MIGRATE", index=0, state_dir=tmp_path / "p1", identity=identity)
    assert migrated.vault.snapshot()["keys"] == snapshot["keys"]
    assert (tmp_path / "p1" / FILE_NAME).read_bytes().startswith(b"AZHSMPS2")
    (tmp_path / "p1" / FILE_NAME).write_bytes(old)            # the old file replayed after the migration
    with pytest.raises(StateError, match="format-1 file"):
        Partition(serial="SN-MIGRATE", index=0, state_dir=tmp_path / "p1", identity=identity)


def test_counters_survive_a_power_cycle_of_the_real_device(tmp_path: Path, firmware_dir: Path) -> None:
    identity = power_on(tmp_path / "dev", firmware_dir, serial="SN-COUNTER")
    partition = Partition(serial="SN-COUNTER", index=3, state_dir=tmp_path / "p3", identity=identity)
    client = HsmClient(LocalTransport(partition))
    masked = client.init_bk3(bytes(48))
    client.establish_credential(APP_ID, PIN, masked, ec.generate_private_key(ec.SECP384R1()))
    before = (tmp_path / "p3" / FILE_NAME).read_bytes()
    client.open_session(APP_ID, PIN)
    client.ecc_generate_key_pair(EccCurve.P384, tag=0x31)
    again = power_on(tmp_path / "dev", firmware_dir, serial="SN-COUNTER")
    assert again.counters.value("partition-3") == identity.counters.value("partition-3") >= 2
    (tmp_path / "p3" / FILE_NAME).write_bytes(before)
    with pytest.raises(StateError, match="rolled back or replayed"):
        Partition(serial="SN-COUNTER", index=3, state_dir=tmp_path / "p3", identity=again)
