"""Fixtures shared by the HSM tests (DDI, post-quantum, confidential VM): a test identity, partitions
in temporary state directories, and clients talking to them in-process (``LocalTransport``: the real
``Partition.execute``). The helpers live in tests/ddi/, which is put on the import path here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "ddi"))

from ddi_helpers import LocalTransport, Provisioned, provision  # noqa: E402
from ddi_identity import TestIdentity  # noqa: E402

from pyhsm.client import HsmClient  # noqa: E402
from pyhsm.ddi.partition import Partition  # noqa: E402


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
