"""Fixtures for the serial mailbox: a real DICE identity (reference firmware stages), an endpoint, and an
in-memory mailbox over it."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from pyhsm import paths
from pyhsm.backend.rot import power_on
from pyhsm.backend.rot.device import DiceIdentity
from pyhsm.backend.serialbus.endpoint import Endpoint
from pyhsm.backend.serialbus.vdm import Management
from pyhsm.protocol.ddi.types import DeviceKind
from pyhsm.protocol.dice.firmware import STAGES, Stage, load_stage
from tests.backend.serialbus.serialbus_loopback import LoopbackMailbox


@pytest.fixture(scope="session")
def firmware() -> list[Stage]:
    directory = paths.hsm_firmware()
    if not (directory / "runtime.fw").is_file():
        pytest.fail(f"{directory} has no firmware stages: build them with `make firmware`", pytrace=False)
    return [load_stage(directory, name) for name in STAGES]


@pytest.fixture(scope="session")
def identity(firmware: list[Stage]) -> Iterator[DiceIdentity]:
    path = Path(tempfile.mkdtemp(prefix="sb-id-", dir="/tmp"))
    yield power_on(path / "dev", paths.hsm_firmware(), serial="SERIAL-BUS-1", deterministic_silicon=True)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def endpoint(identity: DiceIdentity) -> Endpoint:
    return Endpoint(identity, Management(identity, DeviceKind.Physical))


@pytest.fixture
def loopback(endpoint: Endpoint) -> LoopbackMailbox:
    return LoopbackMailbox(endpoint)
