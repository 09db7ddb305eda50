"""Fixtures for the DDI tests: a test identity and partitions in temporary state directories."""

from __future__ import annotations

from pathlib import Path

import pytest
from identity_double import TestIdentity

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
