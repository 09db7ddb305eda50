"""Fixtures of the confidential-VM tests: a provisioned in-process partition (the DDI tests' helpers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ddi"))

from ddi_helpers import LocalTransport, Provisioned, provision  # noqa: E402
from ddi_identity import TestIdentity  # noqa: E402

from pyhsm.client import HsmClient  # noqa: E402
from pyhsm.ddi.partition import Partition  # noqa: E402


@pytest.fixture
def hsm(tmp_path: Path) -> Provisioned:
    identity = TestIdentity()
    partition = Partition(serial=identity.serial, index=0, state_dir=tmp_path / "p0", identity=identity)
    return provision(HsmClient(LocalTransport(partition)), partition)
