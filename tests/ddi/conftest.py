"""Fixtures for the DDI tests: a test identity, partitions in temporary state directories, and
clients talking to them in-process (``LocalTransport``: the real ``Partition.execute``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ddi_helpers import LocalTransport, Provisioned, provision
from ddi_identity import TestIdentity

from pyhsm.client import HsmClient
from pyhsm.ddi.partition import Partition


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
