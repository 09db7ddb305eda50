"""Crash safety: SIGKILL the backend at random moments while it creates keys, 100 times.

After every restart the state must load, every key whose creation was acknowledged (its response
arrived) must be present and usable, and every acknowledged deletion must have stuck; keys whose
creation was in flight may or may not exist.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from pyhsm.client import DdiError, HsmClient
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import EccCurve
from tests.backend.ddi import ddi_backend
from tests.backend.ddi.ddi_helpers import APP_ID, BK3, PIN

ROUNDS = 100
KEEP = 12          # acknowledged keys kept alive between rounds (older ones are deleted)
SERIAL = "CRASH-0001"


class BackendProcess:
    def __init__(self, socket_path: Path, state_dir: Path) -> None:
        self.socket_path, self.state_dir = socket_path, state_dir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = ddi_backend.start(self.socket_path, self.state_dir, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise AssertionError(f"backend did not start: {line!r} {self.proc.stderr.read()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc.stdout.close()
        self.proc.stderr.close()


def _verify(public_der: bytes, signature: bytes, digest: bytes) -> None:
    public = serialization.load_der_public_key(public_der)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    public.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


@pytest.mark.slow
def test_acknowledged_keys_survive_sigkill(tmp_path: Path, reliability) -> None:
    backend = BackendProcess(tmp_path / "hsm.sock", tmp_path / "state")
    backend.start()
    transport = SocketTransport(backend.socket_path, serial=SERIAL)
    setup = HsmClient(transport)
    setup.establish_credential(APP_ID, PIN, setup.init_bk3(BK3), ec.generate_private_key(ec.SECP384R1()))
    transport.close()

    acknowledged: dict[int, bytes] = {}   # tag -> public key DER
    in_flight: set[int] = set()           # tags whose creation may or may not have happened
    deleted: list[int] = []               # tags whose deletion was acknowledged in the last round
    next_tag = 1
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    digest = hashlib.sha256(b"crash loop").digest()
    created_total = 0
    for round_no in range(ROUNDS):
        transport = SocketTransport(backend.socket_path, serial=SERIAL)
        client = HsmClient(transport)
        client.open_session(APP_ID, PIN)
        # Everything acknowledged so far is there and usable.
        for tag, public_der in acknowledged.items():
            key_id = client.open_key(tag).key_id
            _verify(public_der, client.ecc_sign(key_id, digest), digest)
        for tag in deleted:  # acknowledged deletions stay done
            with pytest.raises(DdiError) as gone:
                client.open_key(tag)
            assert gone.value.status is DdiStatus.KeyNotFound
        deleted.clear()
        # Keys from interrupted creations are cleaned up; older keys are deleted (acknowledged).
        for tag in sorted(in_flight):
            try:
                client.delete_key(client.open_key(tag).key_id)
            except DdiError as exc:
                assert exc.status is DdiStatus.KeyNotFound
        in_flight.clear()
        for tag in sorted(acknowledged)[:-KEEP]:
            client.delete_key(client.open_key(tag).key_id)
            del acknowledged[tag]
            deleted.append(tag)

        killer = threading.Timer(rng.uniform(0.0, 0.15), backend.kill)
        killer.start()
        try:
            while True:
                tag, next_tag = next_tag, next_tag + 1
                in_flight.add(tag)
                key = client.ecc_generate_key_pair(EccCurve.P256, tag=tag)
                in_flight.discard(tag)
                acknowledged[tag] = key.pub_key.der
                created_total += 1
        except (ConnectionError, OSError, TimeoutError):
            pass
        killer.join()
        transport.close()
        backend.start()
    final = HsmClient(SocketTransport(backend.socket_path, serial=SERIAL))
    final.open_session(APP_ID, PIN)
    for tag, public_der in acknowledged.items():
        _verify(public_der, final.ecc_sign(final.open_key(tag).key_id, digest), digest)
    final.transport.close()
    backend.kill()
    assert created_total > ROUNDS, f"only {created_total} keys were created in {ROUNDS} rounds"
    print(f"crash loop: {ROUNDS} SIGKILLs, {created_total} acknowledged keys created")
    reliability.record("backend killed (SIGKILL)", "during key creation and deletion", ROUNDS,
                       f"{created_total} acknowledged keys created, none lost")
