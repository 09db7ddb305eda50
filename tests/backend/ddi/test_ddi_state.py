"""Persistence: what survives a backend restart, and how bad state files are reported."""

from __future__ import annotations

import pytest

from pyhsm.backend.ddi.partition import Partition
from pyhsm.backend.ddi.store import FILE_NAME, StateError
from pyhsm.client import HsmClient
from pyhsm.protocol import link
from pyhsm.protocol.ddi.status import DdiStatus as S
from pyhsm.protocol.ddi.types import AesKeySize, AesOp, EccCurve
from tests.backend.ddi.ddi_helpers import APP_ID, PIN, LocalTransport, Provisioned, expect
from tests.backend.ddi.ddi_identity import TestIdentity


def restart(identity, state_dir, index: int = 0) -> HsmClient:
    return HsmClient(LocalTransport(Partition(serial=identity.serial, index=index, state_dir=state_dir,
                                              identity=identity)))


def test_app_keys_credential_and_sealed_bk3_survive_restart(hsm: Provisioned, identity, state_dir) -> None:
    c = hsm.client
    c.set_sealed_bk3(b"sealed")
    key = c.ecc_generate_key_pair(EccCurve.P384, tag=0x99)
    aes = c.aes_generate_key(AesKeySize.Aes256, tag=0x98)
    ct = c.aes_encrypt_decrypt(aes.key_id, AesOp.Encrypt, bytes(32), bytes(16)).msg
    session_key = c.aes_generate_key(AesKeySize.Aes128, session_only=True)
    unwrap = c.get_unwrapping_key()
    c2 = restart(identity, state_dir)
    expect(S.KeyNotFound, c2.get_establish_cred_encryption_key)
    c2.open_session(APP_ID, PIN)
    assert c2.open_key(0x99).key_id == key.private_key_id
    assert c2.aes_encrypt_decrypt(c2.open_key(0x98).key_id, AesOp.Decrypt, ct, bytes(16)).msg == bytes(32)
    expect(S.KeyNotFound, c2.aes_encrypt_decrypt, session_key.key_id, AesOp.Encrypt, bytes(16), bytes(16))
    assert c2.get_sealed_bk3() == b"sealed"
    assert c2.get_unwrapping_key().pub_key.der == unwrap.pub_key.der
    c2.delete_key(key.private_key_id)
    c3 = restart(identity, state_dir)
    c3.open_session(APP_ID, PIN)
    expect(S.KeyNotFound, c3.open_key, 0x99)
    assert c3.unmask_key(key.masked_key).pub_key.der == key.pub_key.der


def test_state_is_encrypted_at_rest(hsm: Provisioned, state_dir) -> None:
    hsm.client.aes_generate_key(AesKeySize.Aes256, tag=1)
    data = (state_dir / FILE_NAME).read_bytes()
    material = next(e.material for _, e in hsm.partition.vault.keys if e.tag == 1)
    assert material not in data and material.hex().encode() not in data
    assert APP_ID not in data and APP_ID.hex().encode() not in data and PIN not in data


def test_nssr_is_persisted(hsm: Provisioned, identity, state_dir) -> None:
    hsm.client.set_sealed_bk3(b"keep")
    hsm.partition.reset(link.ResetKind.NSSR)
    c = restart(identity, state_dir)
    assert c.get_establish_cred_encryption_key().nonce
    assert c.get_sealed_bk3() == b"keep"


@pytest.mark.parametrize("damage,message", [
    (lambda d: d[: len(d) // 2], "corrupt"),
    (lambda d: d[:20], "truncated"),
    (lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:], "corrupt"),
    (lambda d: b"XXXXXXXX" + d[8:], "bad magic"),
    (lambda d: b"", "truncated"),
])
def test_damaged_state_is_reported_not_replaced(hsm: Provisioned, identity, state_dir, damage, message) -> None:
    path = state_dir / FILE_NAME
    damaged = damage(path.read_bytes())
    path.write_bytes(damaged)
    with pytest.raises(StateError, match=message):
        restart(identity, state_dir)
    assert path.read_bytes() == damaged


def test_foreign_state_is_reported(hsm: Provisioned, identity, state_dir, tmp_path) -> None:
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    (other_dir / FILE_NAME).write_bytes((state_dir / FILE_NAME).read_bytes())
    with pytest.raises(StateError, match="foreign"):
        restart(identity, other_dir, index=1)
    with pytest.raises(StateError, match="foreign"):
        restart(TestIdentity(identity.serial, seed=b"another device"), state_dir)
