"""Fixtures for the DDI tests: a test identity, partitions in temporary state directories, and
clients talking to them in-process (``LocalTransport``, the real ``Partition.execute``) or through
the real backend socket (``tests/ddi/test_socket.py``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from identity_double import TestIdentity

from pyhsm import link
from pyhsm.client import HsmClient
from pyhsm.ddi.partition import Partition
from pyhsm.transport import MAX_BUFFER, Completion

APP_ID = bytes.fromhex("0123456789abcdef0123456789abcdef")
PIN = b"pin-0123456789ab"
BK3 = bytes(range(48))


class LocalTransport:
    """Hands each command straight to ``Partition.execute`` (what the link server does)."""

    def __init__(self, partition: Partition) -> None:
        self.partition = partition
        self.requests: list[link.Request] = []
        self.responses: list[link.Response] = []

    def submit(self, request: bytes, flags: link.SessionFlags, session_id: int = 0, *,
               opc: int = 0, dst_len: int = MAX_BUFFER) -> Completion:
        req = link.Request(1, 1, opc, flags.to_byte(), session_id, dst_len, request)
        self.requests.append(req)
        resp = self.partition.execute(req)
        self.responses.append(resp)
        return Completion(resp.status, link.SessionFlags.from_byte(resp.session_flags), resp.session_id,
                          resp.short_app_id, resp.payload)

    def close(self) -> None:
        pass


@dataclass
class Provisioned:
    client: HsmClient
    partition: Partition
    masked_bk3: bytes
    bmk: bytes
    pota: ec.EllipticCurvePrivateKey
    seed: bytes
    bmk_session: bytes

    def another_client(self) -> HsmClient:
        return HsmClient(LocalTransport(self.partition))


def provision(client: HsmClient, partition: Partition) -> Provisioned:
    pota = ec.generate_private_key(ec.SECP384R1())
    masked_bk3 = client.init_bk3(BK3)
    bmk = client.establish_credential(APP_ID, PIN, masked_bk3, pota)
    seed = os.urandom(48)
    opened = client.open_session(APP_ID, PIN, seed)
    return Provisioned(client, partition, masked_bk3, bmk, pota, seed, opened.bmk_session)


@pytest.fixture
def identity() -> TestIdentity:
    return TestIdentity()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "partition-0"


@pytest.fixture
def partition(identity: TestIdentity, state_dir: Path) -> Partition:
    return Partition(serial=identity.serial, index=0, state_dir=state_dir, identity=identity)


@pytest.fixture
def client(partition: Partition) -> HsmClient:
    return HsmClient(LocalTransport(partition))


@pytest.fixture
def hsm(client: HsmClient, partition: Partition) -> Provisioned:
    """A provisioned partition with one open session."""
    return provision(client, partition)
