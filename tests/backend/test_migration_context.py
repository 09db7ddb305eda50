"""The partition's migration context (docs/device.md, "Migration"; docs/security.md, "Migration context"):
sealing and opening, the key file, rollback, and a guest's recovery on another HSM, without QEMU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key

from pyhsm.backend.ddi import migration_context as mc
from pyhsm.backend.ddi.partition import Partition
from pyhsm.client import HsmClient
from pyhsm.protocol import link
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import EccCurve
from pyhsm.protocol.link import LmContextStatus
from tests.backend.ddi.ddi_helpers import APP_ID, PIN, LocalTransport, expect, provision
from tests.backend.ddi.ddi_identity import TestIdentity

FLEET_KEY = bytes(range(100, 148))
OTHER_FLEET_KEY = bytes(range(1, 49))


def _record() -> mc.Record:
    return mc.Record(0b1000_0101, os.urandom(80), os.urandom(200))


# ---- sealing -------------------------------------------------------------------------------------------

def test_seal_and_open_round_trip_and_nothing_in_clear():
    record = _record()
    sealed = mc.seal(FLEET_KEY, "AZIHSM-SRC", 5, 42, record)
    assert len(sealed) <= link.MAX_LM_CONTEXT
    opened = mc.open_context(FLEET_KEY, sealed)
    assert (opened.serial, opened.partition, opened.counter, opened.record) == ("AZIHSM-SRC", 5, 42, record)
    for secret in (record.bk_boot, record.sealed_bk3, FLEET_KEY):
        for at in range(0, len(secret) - 8, 8):
            assert secret[at:at + 8] not in sealed
    assert mc.seal(FLEET_KEY, "AZIHSM-SRC", 5, 42, record) != sealed   # a fresh nonce every time


def test_every_altered_byte_is_refused():
    sealed = mc.seal(FLEET_KEY, "AZIHSM-SRC", 0, 1, _record())
    for at in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[at] ^= 0x01
        with pytest.raises(mc.ContextRefused) as refused:
            mc.open_context(FLEET_KEY, bytes(tampered))
        assert refused.value.status in (LmContextStatus.NOT_AUTHENTIC, LmContextStatus.MALFORMED), at
        if at >= 8 + 32:    # past magic, versions and serial: only the tag check can catch it
            assert refused.value.status == LmContextStatus.NOT_AUTHENTIC, at


@pytest.mark.parametrize("context, status", [
    (b"", LmContextStatus.MALFORMED),
    (b"AZLM" + bytes(200), LmContextStatus.MALFORMED),
    (bytes(link.MAX_LM_CONTEXT + 1), LmContextStatus.MALFORMED),
])
def test_malformed_contexts(context, status):
    with pytest.raises(mc.ContextRefused) as refused:
        mc.open_context(FLEET_KEY, context)
    assert refused.value.status == status


def test_another_fleet_key_cannot_open_it():
    sealed = mc.seal(FLEET_KEY, "AZIHSM-SRC", 0, 1, _record())
    with pytest.raises(mc.ContextRefused) as refused:
        mc.open_context(OTHER_FLEET_KEY, sealed)
    assert refused.value.status == LmContextStatus.NOT_AUTHENTIC


def test_key_file_rules(tmp_path: Path):
    raw = tmp_path / "raw.key"
    raw.write_bytes(FLEET_KEY)
    raw.chmod(0o600)
    assert mc.load_key(raw) == FLEET_KEY
    hexed = tmp_path / "hex.key"
    hexed.write_text(FLEET_KEY.hex() + "\n")
    hexed.chmod(0o600)
    assert mc.load_key(hexed) == FLEET_KEY
    raw.chmod(0o644)
    with pytest.raises(ValueError, match="0600"):
        mc.load_key(raw)
    short = tmp_path / "short.key"
    short.write_bytes(bytes(32))
    short.chmod(0o600)
    with pytest.raises(ValueError, match="48 bytes"):
        mc.load_key(short)


# ---- partitions: export, import, rollback, recovery --------------------------------------------------

def _any_session_credential(partition: Partition):
    """A well-formed session credential (sealed for ``partition``'s session key), for requests that must
    fail before it is checked; its public key is left on the function as ``pub``."""
    cred, pub = _client(partition)._session_credential(APP_ID, PIN, bytes(48))
    _any_session_credential.pub = pub   # type: ignore[attr-defined]
    return cred


def _partition(tmp_path: Path, serial: str, key: bytes | None, identity: TestIdentity | None = None) -> Partition:
    identity = identity or TestIdentity(serial)
    return Partition(serial=serial, index=0, state_dir=tmp_path / serial / "p0", identity=identity,
                     migration_key=key)


def _verify(public_der: bytes, digest: bytes, signature: bytes) -> None:
    """Check a P-384 signature (r || s, big-endian) over a SHA-384 digest with the key reported before."""
    public = load_der_public_key(public_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    r, s = int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    public.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA384())))


def _client(partition: Partition) -> HsmClient:
    return HsmClient(LocalTransport(partition))


def test_guest_recovers_on_another_hsm_with_the_context(tmp_path: Path):
    source = _partition(tmp_path, "AZIHSM-SRC", FLEET_KEY)
    stale = _client(source).get_establish_cred_encryption_key()   # a credential sealed before the migration
    hsm = provision(_client(source), source)
    hsm.client.set_sealed_bk3(hsm.masked_bk3)
    key = hsm.client.ecc_generate_key_pair(EccCurve.P384)
    sess_id = hsm.client.session_id
    context = source.export_migration_context()

    destination = _partition(tmp_path, "AZIHSM-DST", FLEET_KEY)
    destination.import_migration_context(context)
    destination.reset(link.ResetKind.NSSR)     # what the device sends right after
    client = _client(destination)
    assert client.get_sealed_bk3() == hsm.masked_bk3
    client.session_id = sess_id
    expect(DdiStatus.SessionNeedsRenegotiation, client.ecc_sign, key.private_key_id, bytes(48))
    client.session_id = None
    # What the vendor's live-migration tests expect before the credential is re-established.
    expect(DdiStatus.CredentialsNotEstablished, client.get_session_encryption_key)
    expect(DdiStatus.CredentialsNotEstablished, client.open_session, APP_ID, PIN)
    client.session_id = sess_id
    expect(DdiStatus.PartitionNotProvisioned, client.call, "ReopenSession",
           encrypted_credential=_any_session_credential(source), pub_key=_any_session_credential.pub,
           bmk_session=hsm.bmk_session)
    client.session_id = None
    old = _client(destination)
    old.get_establish_cred_encryption_key = lambda: stale   # type: ignore[method-assign]
    expect(DdiStatus.NonceMismatch, old.establish_credential, APP_ID, PIN, hsm.masked_bk3, hsm.pota, bmk=hsm.bmk)
    client.establish_credential(APP_ID, PIN, hsm.masked_bk3, hsm.pota, bmk=hsm.bmk)
    reopened = client.reopen_session(sess_id, APP_ID, PIN, hsm.seed, hsm.bmk_session)
    assert reopened.sess_id == sess_id
    restored = client.unmask_key(key.masked_key)
    digest = os.urandom(48)
    signature = client.ecc_sign(restored.key_id, digest)
    assert restored.pub_key.der == key.pub_key.der
    _verify(key.pub_key.der, digest, signature)


def test_the_context_survives_a_restart_and_a_replay_is_refused(tmp_path: Path):
    source = _partition(tmp_path, "AZIHSM-SRC", FLEET_KEY)
    hsm = provision(_client(source), source)
    first = source.export_migration_context()
    second = source.export_migration_context()
    assert mc.open_context(FLEET_KEY, second).counter == mc.open_context(FLEET_KEY, first).counter + 1

    identity = TestIdentity("AZIHSM-DST", nv_file=tmp_path / "nv.json")
    destination = _partition(tmp_path, "AZIHSM-DST", FLEET_KEY, identity)
    destination.import_migration_context(second)
    for replay in (second, first):          # the same one again, and an older one
        with pytest.raises(mc.ContextRefused) as refused:
            destination.import_migration_context(replay)
        assert refused.value.status == LmContextStatus.REPLAYED
    # A restarted backend (same chip, same state) keeps both the boot key and the counter.
    again = _partition(tmp_path, "AZIHSM-DST", FLEET_KEY, TestIdentity("AZIHSM-DST", nv_file=tmp_path / "nv.json"))
    with pytest.raises(mc.ContextRefused):
        again.import_migration_context(second)
    client = _client(again)
    client.establish_credential(APP_ID, PIN, hsm.masked_bk3, hsm.pota, bmk=hsm.bmk)   # the source's BK3 unmasks
    third = source.export_migration_context()
    again.import_migration_context(third)     # a newer one is taken


def test_without_the_shared_key_the_context_is_refused_and_the_guest_starts_over(tmp_path: Path):
    source = _partition(tmp_path, "AZIHSM-SRC", FLEET_KEY)
    hsm = provision(_client(source), source)
    context = source.export_migration_context()
    for key, status in ((None, LmContextStatus.NO_MIGRATION_KEY), (OTHER_FLEET_KEY, LmContextStatus.NOT_AUTHENTIC)):
        destination = _partition(tmp_path, f"AZIHSM-DST-{status.value}", key)
        with pytest.raises(mc.ContextRefused) as refused:
            destination.import_migration_context(context)
        assert refused.value.status == status
        destination.reset(link.ResetKind.NSSR)
        client = _client(destination)
        expect(DdiStatus.MaskedKeyDecodeFailed, client.establish_credential, APP_ID, PIN, hsm.masked_bk3,
               hsm.pota, bmk=hsm.bmk)
    keyless = _partition(tmp_path, "AZIHSM-NOKEY", None)
    with pytest.raises(mc.ContextRefused) as refused:
        keyless.export_migration_context()
    assert refused.value.status == LmContextStatus.NO_MIGRATION_KEY
