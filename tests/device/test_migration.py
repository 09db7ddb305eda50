"""Migration of the azihsm device between two QEMU processes under qtest (docs/device.md, "Migration").

A source with its admin, HSM and AES queues created (and a command at the backend) migrates over a UNIX
socket to a destination started with ``-incoming defer``: linked to the same backend, to another backend
with another serial (another physical HSM), or to a backend that is not there yet. The test-side driver
follows the guest (``Controller.rebind``); its rings and buffers moved with guest memory.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from pyhsm.client import DdiError, HsmClient
from pyhsm.host.backend import BackendProcess
from pyhsm.protocol import layout as L
from pyhsm.protocol import link
from pyhsm.protocol.ddi.types import EccCurve
from pyhsm.testing.qtest import migration
from pyhsm.testing.qtest.controller import Controller, open_controller
from pyhsm.testing.qtest.machine import MAILBOX_QOM_PATH, Machine, hsm_device_args, mailbox_device_args
from pyhsm.testing.qtest.transport import QtestTransport
from tests.device.backend_double import GET_API_REV_REQUEST, GET_API_REV_RESPONSE, BackendDouble

pytestmark = pytest.mark.qemu

CSTS_NSSRO = 1 << 4
SERIAL = "AZIHSM-LM-SOURCE"
OTHER_SERIAL = "AZIHSM-LM-OTHER"
LINK_UP_TIMEOUT_S = 10.0


class Lab:
    """Backends and machines of one test, all stopped at its end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.machines: list[Machine] = []
        self.backends: list[BackendDouble] = []

    def backend(self, name: str = "hsm.sock", *, start: bool = True, hello_minor: int = 1) -> BackendDouble:
        """A backend double; by default one of link 1.1, without migration contexts (what these tests
        exercise is the device's own state; the contexts are tested with the real backend below)."""
        backend = BackendDouble(self.workdir / name, hello_minor=hello_minor)
        if start:
            backend.start()
        self.backends.append(backend)
        return backend

    def machine(self, socket: Path, *, incoming: bool = False, extra: list[str] | None = None,
                **props: object) -> Machine:
        machine = Machine(hsm_device_args(socket, **props) + (extra or []), incoming=incoming)
        self.machines.append(machine)
        machine.start()
        return machine

    def uri(self) -> str:
        return f"unix:{self.workdir / f'mig{len(self.machines)}.sock'}"

    def close(self) -> None:
        for machine in self.machines:
            machine.stop()
        for backend in self.backends:
            backend.shutdown()


@pytest.fixture
def lab(qemu_binary: Path, workdir: Path):
    lab = Lab(workdir)
    yield lab
    lab.close()


def _wait_link_up(ctrl: Controller, log) -> None:
    """GetApiRev until the device stops answering 0x701 (its HELLO has been accepted)."""
    deadline = time.monotonic() + LINK_UP_TIMEOUT_S
    while True:
        result = ctrl.hsm(GET_API_REV_REQUEST)
        if result.cqe.status != link.Status.BACKEND_UNAVAILABLE:
            assert (result.cqe.status, result.payload) == (0, GET_API_REV_RESPONSE), result
            return
        assert time.monotonic() < deadline, f"link did not come up; QEMU log:\n{log()}"
        time.sleep(0.02)


def _source(lab: Lab, backend: BackendDouble, *, extra: list[str] | None = None,
            **props: object) -> tuple[Machine, Controller]:
    """A probed source (1 HSM queue, 2 AES queues) that has run some commands: heads, tails, MSI-X in use."""
    machine = lab.machine(backend.path, serial=SERIAL, extra=extra, **props)
    ctrl = open_controller(machine.qtest)
    ctrl.probe()
    _wait_link_up(ctrl, machine.log)
    for i in range(3):
        assert ctrl.hsm(f"before {i}".encode()).payload == f"echo:before {i}".encode()
    assert ctrl.msix.take(L.HSM_FIRST_VECTOR)
    return machine, ctrl


def _registers(ctrl: Controller) -> dict[str, int]:
    return {name: ctrl.read32(off) for name, off in
            (("cc", L.CC), ("aqa", L.AQA), ("asq", L.ASQ), ("acq", L.ACQ))}


def _queues(machine: Machine) -> list[dict]:
    return sorted(machine.qom_get("queues"), key=lambda q: (q["qid"], q["kind"]))


def _reap_all(ctrl: Controller, qid: int, settle_s: float = 0.3) -> list:
    """Every CQE the device posts on ``qid`` within ``settle_s``."""
    found, deadline = [], time.monotonic() + settle_s
    while time.monotonic() < deadline:
        cqe = ctrl.reap(ctrl.queues[qid])
        if cqe is not None:
            found.append(cqe)
        else:
            time.sleep(0.01)
    return found


def _payload(ctrl: Controller, qid: int, cid: int, cqe) -> bytes:
    """The response bytes of a CQE taken with ``reap`` (``wait_hsm`` reads them for a waited one)."""
    return ctrl.qtest.read(ctrl.buffers(qid, cid).dst[0], cqe.byte_count)


def _migrate(lab: Lab, source: Machine, destination: Machine, ctrl: Controller) -> None:
    """Migrate, rebind the driver to the destination, and end the source as a migration does."""
    migration.migrate(source, destination, lab.uri())
    assert source.qmp.cmd("query-status")["status"] == "postmigrate"
    ctrl.rebind(destination.qtest)
    source.stop()


def test_queues_registers_and_msix_continue_and_the_hsm_sees_nssr(lab):
    backend = lab.backend()
    source, ctrl = _source(lab, backend)
    before_queues, before_regs = _queues(source), _registers(ctrl)
    assert [q["qid"] for q in before_queues] == [0, 0, 1, 1, 256, 256, 257, 257]
    assert source.qom_get("migration-resets") == 0
    destination = lab.machine(backend.path, incoming=True, serial=SERIAL)
    assert destination.qom_get("link-state") == "down"  # no HELLO before the state arrives
    _migrate(lab, source, destination, ctrl)

    assert _queues(destination) == before_queues
    assert _registers(ctrl) == before_regs
    csts = ctrl.csts()
    assert csts & (L.CSTS_RDY | L.CSTS_CFS | CSTS_NSSRO) == L.CSTS_RDY | CSTS_NSSRO, f"CSTS {csts:#x}"
    _wait_link_up(ctrl, destination.log)
    # The HSM behind the link saw the subsystem reset before any command after the migration.
    assert backend.resets == [link.ResetKind.NSSR], backend.resets
    assert destination.qom_get("migration-resets") == 1
    result = ctrl.hsm(b"after")
    assert (result.cqe.status, result.payload) == (0, b"echo:after")
    assert ctrl.msix.take(L.HSM_FIRST_VECTOR), "the HSM queue's MSI-X vector did not fire after migration"
    # An admin command on the migrated admin queue, and a level-2 reset (what the vendor's simulation of
    # NSSR-after-migration does) still work; NSSRO goes with the next enable.
    assert ctrl.identify().serial.rstrip("\0") == SERIAL
    ctrl.level2_reset(via_nssr=True)
    assert ctrl.csts() & CSTS_NSSRO == 0
    assert ctrl.hsm(b"after reset").payload == b"echo:after reset"


def test_in_flight_command_drains_before_the_switch_and_completes_once(lab):
    backend = lab.backend()
    source, ctrl = _source(lab, backend)
    destination = lab.machine(backend.path, incoming=True, serial=SERIAL)
    backend.hold()
    cid = ctrl.submit_hsm(1, b"in flight")
    assert backend.wait_for(lambda: len(backend.held) == 1)
    migration.start(source, destination, lab.uri())
    # The source holds the migration in its setup phase while the request is at the backend.
    assert backend.wait_for(lambda: migration.query(source)["status"] == "wait-unplug", 3), \
        migration.query(source)
    assert source.qom_get("inflight") == 1
    backend.release()
    migration.wait_source(source)
    migration.wait_running(destination)
    ctrl.rebind(destination.qtest)
    source.stop()
    found = _reap_all(ctrl, 1)
    assert [(c.cid, c.status) for c in found] == [(cid, 0)], found
    assert _payload(ctrl, 1, cid, found[0]) == b"echo:in flight"
    assert [r.payload for _, r in backend.requests].count(b"in flight") == 1
    _wait_link_up(ctrl, destination.log)
    assert _reap_all(ctrl, 1) == []


def test_in_flight_command_past_the_drain_bound_is_aborted_once(lab):
    backend = lab.backend()
    source, ctrl = _source(lab, backend, extra=["-global", "azihsm.migrate-drain-ms=200"])
    destination = lab.machine(backend.path, incoming=True, serial=SERIAL)
    backend.hold()
    cid = ctrl.submit_hsm(1, b"stuck", session_flags=0x2, session_id=5)  # a CLOSE: the slot is freed
    assert backend.wait_for(lambda: len(backend.held) == 1)
    started = time.monotonic()
    _migrate(lab, source, destination, ctrl)
    assert time.monotonic() - started < 5, "the drain bound did not hold the migration short"
    found = _reap_all(ctrl, 1)
    assert [(c.cid, c.status) for c in found] == [(cid, link.Status.ABORTED_SQ_DELETED)], found
    assert (found[0].session_flags, found[0].session_id) == (0x16, 5)
    backend.release()  # the answer nobody waits for any more
    _wait_link_up(ctrl, destination.log)
    assert ctrl.hsm(b"next").payload == b"echo:next"
    assert [c for c in _reap_all(ctrl, 1) if c.cid == cid] == [], "the aborted command completed twice"


def test_queued_commands_wait_for_the_destination(lab):
    """Commands rung while the source drains stay in the SQ and run on the destination, after its NSSR."""
    backend = lab.backend()
    source, ctrl = _source(lab, backend)
    destination = lab.machine(backend.path, incoming=True, serial=SERIAL)
    backend.hold()
    first = ctrl.submit_hsm(1, b"first")
    assert backend.wait_for(lambda: len(backend.held) == 1)
    migration.start(source, destination, lab.uri())
    assert backend.wait_for(lambda: migration.query(source)["status"] == "wait-unplug", 3)
    queued = ctrl.submit_hsm(1, b"queued")
    time.sleep(0.2)
    assert b"queued" not in [r.payload for _, r in backend.requests], "the source fetched while draining"
    backend.release()
    migration.wait_source(source)
    migration.wait_running(destination)
    ctrl.rebind(destination.qtest)
    source.stop()
    assert ctrl.wait_hsm(1, first).cqe.status == 0
    result = ctrl.wait_hsm(1, queued, timeout_s=LINK_UP_TIMEOUT_S)
    assert (result.cqe.status, result.payload) == (0, b"echo:queued"), destination.log()[-6000:]
    assert backend.resets == [link.ResetKind.NSSR]


def test_destination_on_another_backend_with_another_serial(lab):
    old, new = lab.backend("old.sock"), lab.backend("new.sock")
    source, ctrl = _source(lab, old)
    queues = _queues(source)
    destination = lab.machine(new.path, incoming=True, serial=OTHER_SERIAL)
    _migrate(lab, source, destination, ctrl)
    assert _queues(destination) == queues
    _wait_link_up(ctrl, destination.log)
    assert [h.serial for h in new.hellos] == [OTHER_SERIAL]
    assert new.resets == [link.ResetKind.NSSR]
    assert old.resets == []
    assert ctrl.identify().serial.rstrip("\0") == OTHER_SERIAL


def test_destination_without_backend_fails_fast_then_picks_it_up(lab):
    old = lab.backend("old.sock")
    missing = lab.backend("later.sock", start=False)
    source, ctrl = _source(lab, old)
    destination = lab.machine(missing.path, incoming=True, serial=OTHER_SERIAL)
    _migrate(lab, source, destination, ctrl)
    for _ in range(3):
        started = time.monotonic()
        result = ctrl.hsm(b"nobody")
        assert result.cqe.status == link.Status.BACKEND_UNAVAILABLE
        assert time.monotonic() - started < 1.0
    missing.start()
    _wait_link_up(ctrl, destination.log)
    assert missing.resets == [link.ResetKind.NSSR]
    assert ctrl.hsm(b"found").payload == b"echo:found"


def test_stream_for_another_resource_count_is_refused(lab):
    backend = lab.backend()
    source, ctrl = _source(lab, backend)
    destination = lab.machine(backend.path, incoming=True, serial=SERIAL, res_cnt=2)
    migration.start(source, destination, lab.uri())
    try:
        migration.wait_source(source)  # precopy: the source may have sent everything before the load fails
        completed = True
    except migration.MigrationFailed:
        completed = False  # or the destination closed the socket first
    assert destination.process.wait(10) != 0
    assert "res-cnt 1, this one has res-cnt 2: refused" in destination.log(), destination.log()
    assert backend.resets == []
    if completed:
        # The management layer resumes the source, as after any failed switchover. Its device cannot know
        # whether the destination ran, so it reconnects with the post-migration NSSR.
        assert source.qmp.cmd("query-status")["status"] == "postmigrate"
        source.qmp.cmd("cont")
    else:
        # A migration the source saw fail: the VM runs on, fetching resumes, the link was never let go.
        assert source.qmp.cmd("query-status")["status"] == "running"
    _wait_link_up(ctrl, source.log)
    assert ctrl.hsm(b"still here").payload == b"echo:still here"
    assert backend.resets == ([link.ResetKind.NSSR] if completed else [])


def test_stream_of_another_version_is_refused(lab, workdir):
    backend = lab.backend()
    source, ctrl = _source(lab, backend)
    image = workdir / "state.mig"
    migration.start(source, None, f"file:{image}")
    migration.wait_source(source)
    data = bytearray(image.read_bytes())
    name = b"/azihsm"
    at = data.find(name + b"\0\0\0\0")  # idstr, then instance 0 and version 1 (big-endian)
    assert at > 0 and data[at + len(name) + 4:at + len(name) + 8] == (1).to_bytes(4, "big")
    data[at + len(name) + 4:at + len(name) + 8] = (2).to_bytes(4, "big")
    image.write_bytes(bytes(data))
    destination = lab.machine(backend.path, incoming=True, serial=SERIAL)
    destination.qmp.cmd("migrate-incoming", uri=f"file:{image}")
    destination.process.wait(10)
    assert "unsupported version 2 for '0000:00:02.0/azihsm' v1" in destination.log() or \
        ("unsupported version 2" in destination.log() and "azihsm" in destination.log()), destination.log()


def test_snapshot_file_restores_in_a_new_process(lab, workdir):
    """``migrate`` to a file and ``migrate-incoming`` from it: the CI snapshot path."""
    backend = lab.backend()
    source, ctrl = _source(lab, backend)
    queues = _queues(source)
    image = workdir / "snap.mig"
    migration.start(source, None, f"file:{image}")
    migration.wait_source(source)
    source.stop()
    destination = lab.machine(backend.path, incoming=True, serial=SERIAL)
    destination.qmp.cmd("migrate-incoming", uri=f"file:{image}")
    migration.wait_running(destination)
    ctrl.rebind(destination.qtest)
    assert _queues(destination) == queues
    _wait_link_up(ctrl, destination.log)
    assert backend.resets == [link.ResetKind.NSSR]


def test_mailbox_migrates_with_the_function(lab):
    backend = lab.backend()
    mbx = lab.backend("mbx.sock")
    source = lab.machine(backend.path, serial=SERIAL, extra=mailbox_device_args(mbx.path, serial=SERIAL))
    assert backend.wait_for(lambda: source.qom_get("link-state", MAILBOX_QOM_PATH) == "up")
    destination = lab.machine(backend.path, incoming=True, serial=SERIAL,
                              extra=mailbox_device_args(mbx.path, serial=SERIAL))
    assert destination.qom_get("link-state", MAILBOX_QOM_PATH) == "down"
    migration.migrate(source, destination, lab.uri())
    source.stop()
    assert backend.wait_for(lambda: destination.qom_get("link-state", MAILBOX_QOM_PATH) == "up")
    assert len(mbx.hellos) == 2


# ---- the real backend: sessions after the post-migration NSSR ---------------------------------------

APP_ID = bytes.fromhex("5a1e0f3c7b2d4e6f8a9b0c1d2e3f4a5b")
PIN = bytes.fromhex("70696e2d6f662d7468652d6775657374")
BK3 = bytes(range(48))


def _client(ctrl: Controller) -> HsmClient:
    client = HsmClient(QtestTransport(ctrl))
    deadline = time.monotonic() + 15
    while True:
        try:
            client.get_api_rev()
            return client
        except Exception as exc:  # noqa: BLE001 - DeviceError 0x701 while HELLO is under way
            if getattr(exc, "status", None) != link.Status.BACKEND_UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_old_session_needs_renegotiation_and_reopens_with_its_keys(qemu_binary, workdir):
    with BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log") as backend:
        with Machine(hsm_device_args(backend.socket, serial=SERIAL)) as source, \
                Machine(hsm_device_args(backend.socket, serial=SERIAL), incoming=True) as destination:
            ctrl = open_controller(source.qtest)
            ctrl.probe()
            client = _client(ctrl)
            masked_bk3 = client.init_bk3(BK3)
            pota = ec.generate_private_key(ec.SECP384R1())
            bmk = client.establish_credential(APP_ID, PIN, masked_bk3, pota)
            opened = client.open_session(APP_ID, PIN)
            key = client.ecc_generate_key_pair(EccCurve.P384)
            digest = bytes(range(48))
            assert len(client.ecc_sign(key.private_key_id, digest)) == 96

            migration.migrate(source, destination, f"unix:{workdir / 'mig.sock'}")
            ctrl.rebind(destination.qtest)
            source.stop()
            client = _client(ctrl)
            client.session_id = opened.sess_id
            with pytest.raises(DdiError) as stale:
                client.ecc_sign(key.private_key_id, digest)
            assert stale.value.name == "SessionNeedsRenegotiation"
            # Recovery as the vendor's live-migration tests do it: the credential again with the same
            # masked BK3 and partition BMK, ReopenSession with the session's BMK, then the key's blob.
            client.session_id = None
            client.establish_credential(APP_ID, PIN, masked_bk3, pota, bmk=bmk)
            reopened = client.reopen_session(opened.sess_id, APP_ID, PIN, opened.seed, opened.bmk_session)
            assert reopened.sess_id == opened.sess_id
            restored = client.unmask_key(key.masked_key)
            assert len(client.ecc_sign(restored.key_id, digest)) == 96


def test_on_another_hsm_the_partition_is_new(qemu_binary, workdir):
    """A destination on another backend with another serial is another physical HSM: the NSSR reaches a
    partition that never saw the guest, so its old session is unknown there and blobs masked by the first
    HSM's boot key do not unmask (docs/device.md, "Migration", Limits)."""
    with BackendProcess(workdir / "a.sock", workdir / "state-a", workdir / "a.log") as first, \
            BackendProcess(workdir / "b.sock", workdir / "state-b", workdir / "b.log") as second:
        with Machine(hsm_device_args(first.socket, serial=SERIAL)) as source, \
                Machine(hsm_device_args(second.socket, serial=OTHER_SERIAL), incoming=True) as destination:
            ctrl = open_controller(source.qtest)
            ctrl.probe()
            client = _client(ctrl)
            masked_bk3 = client.init_bk3(BK3)
            pota = ec.generate_private_key(ec.SECP384R1())
            bmk = client.establish_credential(APP_ID, PIN, masked_bk3, pota)
            opened = client.open_session(APP_ID, PIN)
            migration.migrate(source, destination, f"unix:{workdir / 'mig.sock'}")
            ctrl.rebind(destination.qtest)
            source.stop()
            client = _client(ctrl)
            assert destination.qom_get("migration-resets") == 1
            client.session_id = opened.sess_id
            with pytest.raises(DdiError) as unknown:
                client.ecc_generate_key_pair(EccCurve.P384)
            assert unknown.value.name == "InvalidArg"  # an unknown session id (docs/ddi.md)
            client.session_id = None
            with pytest.raises(DdiError) as foreign:
                client.establish_credential(APP_ID, PIN, masked_bk3, pota, bmk=bmk)
            assert foreign.value.name == "MaskedKeyDecodeFailed"
            # A fresh start on the new HSM works: its own BK3 and credential.
            client.establish_credential(APP_ID, PIN, client.init_bk3(BK3), pota)
            client.open_session(APP_ID, PIN)
            key = client.ecc_generate_key_pair(EccCurve.P384)
            assert len(client.ecc_sign(key.private_key_id, bytes(48))) == 96


def test_an_old_backend_or_a_silent_one_means_a_migration_without_context(lab):
    """A backend of link 1.1 is never asked; one of 1.2 that does not answer holds the migration's setup
    phase for at most backend-timeout-ms, and the guest then migrates without its context."""
    old = lab.backend("old.sock")
    source, ctrl = _source(lab, old)
    destination = lab.machine(old.path, incoming=True, serial=SERIAL)
    _migrate(lab, source, destination, ctrl)
    assert destination.qom_get("migration-context") == "none"
    _wait_link_up(ctrl, destination.log)

    silent = lab.backend("silent.sock", hello_minor=link.MINOR)   # decodes the GET and never answers it
    source, ctrl = _source(lab, silent, extra=["-global", "azihsm.backend-timeout-ms=300"])
    destination = lab.machine(silent.path, incoming=True, serial=SERIAL)
    started = time.monotonic()
    _migrate(lab, source, destination, ctrl)
    assert time.monotonic() - started < 5
    assert "migrating without the partition's migration context" in source.log()
    assert destination.qom_get("migration-context") == "none"
    _wait_link_up(ctrl, destination.log)
    assert silent.resets == [link.ResetKind.NSSR]


# ---- another HSM of the same fleet: the migration context (docs/device.md, "Migration") --------------

FLEET_KEY = bytes(range(7, 55))


def _fleet_backend(workdir: Path, name: str, key: bytes | None = FLEET_KEY) -> BackendProcess:
    """A real backend; with ``key``, the fleet migration key in its state directory (0600)."""
    state = workdir / f"state-{name}"
    state.mkdir(mode=0o700)
    if key is not None:
        (state / "migration.key").write_bytes(key)
        (state / "migration.key").chmod(0o600)
    return BackendProcess(workdir / f"{name}.sock", state, workdir / f"{name}.log")


def _verify_p384(public_der: bytes, digest: bytes, signature: bytes) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
    from cryptography.hazmat.primitives.serialization import load_der_public_key
    public = load_der_public_key(public_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    r, s = int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big")
    public.verify(encode_dss_signature(r, s), digest, ec.ECDSA(Prehashed(hashes.SHA384())))


class _Guest:
    """What a guest keeps across a migration: its masked BK3, POTA key, BMKs, seed, session and key."""

    def __init__(self, ctrl: Controller) -> None:
        client = _client(ctrl)
        self.stale = client.get_establish_cred_encryption_key()   # sealed for before the migration
        self.masked_bk3 = client.init_bk3(BK3)
        client.set_sealed_bk3(self.masked_bk3)
        self.pota = ec.generate_private_key(ec.SECP384R1())
        self.bmk = client.establish_credential(APP_ID, PIN, self.masked_bk3, self.pota)
        self.opened = client.open_session(APP_ID, PIN)
        self.key = client.ecc_generate_key_pair(EccCurve.P384)
        digest = bytes(range(48))
        _verify_p384(self.key.pub_key.der, digest, client.ecc_sign(self.key.private_key_id, digest))

    def recovers(self, ctrl: Controller) -> None:
        """The vendor's sequence after a migration, with the statuses its tests expect."""
        client = _client(ctrl)
        client.session_id = self.opened.sess_id
        with pytest.raises(DdiError) as stale:
            client.ecc_sign(self.key.private_key_id, bytes(48))
        assert stale.value.name == "SessionNeedsRenegotiation"
        client.session_id = None
        assert client.get_sealed_bk3() == self.masked_bk3
        with pytest.raises(DdiError) as early:
            client.get_session_encryption_key()
        assert early.value.name == "CredentialsNotEstablished"
        old = _client(ctrl)
        old.get_establish_cred_encryption_key = lambda: self.stale  # type: ignore[method-assign]
        with pytest.raises(DdiError) as nonce:
            old.establish_credential(APP_ID, PIN, self.masked_bk3, self.pota, bmk=self.bmk)
        assert nonce.value.name == "NonceMismatch"
        client.establish_credential(APP_ID, PIN, self.masked_bk3, self.pota, bmk=self.bmk)
        reopened = client.reopen_session(self.opened.sess_id, APP_ID, PIN, self.opened.seed,
                                         self.opened.bmk_session)
        assert reopened.sess_id == self.opened.sess_id
        restored = client.unmask_key(self.key.masked_key)
        digest = bytes(range(100, 148))
        _verify_p384(self.key.pub_key.der, digest, client.ecc_sign(restored.key_id, digest))

    def starts_over(self, ctrl: Controller) -> None:
        """On an HSM that did not take the context: unknown session, foreign BK3, then a fresh start."""
        client = _client(ctrl)
        client.session_id = self.opened.sess_id
        with pytest.raises(DdiError) as unknown:
            client.ecc_sign(self.key.private_key_id, bytes(48))
        assert unknown.value.name == "InvalidArg"
        client.session_id = None
        with pytest.raises(DdiError) as foreign:
            client.establish_credential(APP_ID, PIN, self.masked_bk3, self.pota, bmk=self.bmk)
        assert foreign.value.name == "MaskedKeyDecodeFailed"
        client.establish_credential(APP_ID, PIN, client.init_bk3(BK3), self.pota)
        client.open_session(APP_ID, PIN)
        key = client.ecc_generate_key_pair(EccCurve.P384)
        assert len(client.ecc_sign(key.private_key_id, bytes(48))) == 96


def _settled(machine: Machine, ctrl: Controller) -> str:
    """The destination's migration-context state once its link is up and the NSSR acknowledged."""
    _client(ctrl)
    return machine.qom_get("migration-context")


def test_on_another_hsm_of_the_fleet_the_guest_recovers_its_sessions_and_keys(qemu_binary, workdir):
    with _fleet_backend(workdir, "a") as first, _fleet_backend(workdir, "b") as second:
        with Machine(hsm_device_args(first.socket, serial=SERIAL)) as source, \
                Machine(hsm_device_args(second.socket, serial=OTHER_SERIAL), incoming=True) as destination:
            ctrl = open_controller(source.qtest)
            ctrl.probe()
            guest = _Guest(ctrl)
            migration.migrate(source, destination, f"unix:{workdir / 'mig.sock'}")
            assert source.qom_get("migration-context") == "saved"
            ctrl.rebind(destination.qtest)
            source.stop()
            assert _settled(destination, ctrl) == "accepted"
            assert destination.qom_get("migration-context-status") == link.LmContextStatus.OK
            guest.recovers(ctrl)


def test_without_the_shared_key_the_destination_refuses_and_the_guest_starts_over(qemu_binary, workdir):
    with _fleet_backend(workdir, "a") as first, _fleet_backend(workdir, "b", key=None) as second:
        with Machine(hsm_device_args(first.socket, serial=SERIAL)) as source, \
                Machine(hsm_device_args(second.socket, serial=OTHER_SERIAL), incoming=True) as destination:
            ctrl = open_controller(source.qtest)
            ctrl.probe()
            guest = _Guest(ctrl)
            migration.migrate(source, destination, f"unix:{workdir / 'mig.sock'}")
            ctrl.rebind(destination.qtest)
            source.stop()
            assert _settled(destination, ctrl) == "refused"
            assert destination.qom_get("migration-context-status") == link.LmContextStatus.NO_MIGRATION_KEY
            assert "refused the migration context (status 1)" in destination.log()
            guest.starts_over(ctrl)
    assert "no migration key" in (workdir / "b.log").read_text()


def test_a_tampered_or_replayed_context_is_refused(qemu_binary, workdir):
    """A snapshot with its context: altered, it does not authenticate; restored twice on one HSM, the
    second restore is a replay (the destination's rollback counter)."""
    with _fleet_backend(workdir, "a") as first, _fleet_backend(workdir, "b") as second:
        with Machine(hsm_device_args(first.socket, serial=SERIAL)) as source:
            ctrl = open_controller(source.qtest)
            ctrl.probe()
            guest = _Guest(ctrl)
            image = workdir / "snap.mig"
            migration.start(source, None, f"file:{image}")
            migration.wait_source(source)
            # the driver's view of its rings at the snapshot, for every restore of it
            saved = copy.deepcopy(ctrl, memo={id(ctrl.qtest): ctrl.qtest})
        genuine = image.read_bytes()
        at = genuine.find(b"AZLM")
        assert at > 0 and genuine.find(b"AZLM", at + 1) < 0, "one context in the stream"
        tampered = bytearray(genuine)
        tampered[at + 100] ^= 0x40
        (workdir / "tampered.mig").write_bytes(bytes(tampered))

        outcomes = []
        for name in ("tampered.mig", "snap.mig", "snap.mig"):
            with Machine(hsm_device_args(second.socket, serial=OTHER_SERIAL), incoming=True) as destination:
                destination.qmp.cmd("migrate-incoming", uri=f"file:{workdir / name}")
                migration.wait_running(destination)
                ctrl = copy.deepcopy(saved, memo={id(saved.qtest): saved.qtest})
                ctrl.rebind(destination.qtest)
                outcomes.append((_settled(destination, ctrl), destination.qom_get("migration-context-status")))
                if len(outcomes) == 2:
                    guest.recovers(ctrl)
        assert outcomes == [("refused", link.LmContextStatus.NOT_AUTHENTIC), ("accepted", 0),
                            ("refused", link.LmContextStatus.REPLAYED)], outcomes
    log = (workdir / "b.log").read_text()
    assert "does not authenticate" in log and "replayed" in log
