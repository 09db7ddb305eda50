"""Fixtures shared by the HSM tests (DDI, post-quantum, confidential VM, root of trust, security): a test
identity, partitions in temporary state directories, clients talking to them in-process
(``LocalTransport``: the real ``Partition.execute``), and the HSM firmware images. The helpers live in tests/backend/ddi/ and
tests/backend/cvm/."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]


from pyhsm import paths  # noqa: E402

paths.use_numba_cache()   # before anything imports the root of trust's kernels

from pyhsm.backend.ddi.partition import Partition  # noqa: E402
from pyhsm.client import HsmClient  # noqa: E402
from tests.backend.ddi.ddi_helpers import LocalTransport, Provisioned, provision  # noqa: E402
from tests.backend.ddi.ddi_identity import TestIdentity  # noqa: E402
from tests.reliability_log import RELIABILITY, Reliability  # noqa: E402


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


@pytest.fixture(scope="session")
def firmware_dir(tmp_path_factory) -> Path:
    """The firmware stage images, built by images/firmware/Makefile into a temporary directory."""
    if shutil.which("make") is None:
        pytest.fail("make is needed to build the firmware images")
    out = tmp_path_factory.mktemp("firmware")
    subprocess.run(["make", "-s", "-C", str(ROOT / "images" / "firmware"), f"OUT={out}", f"PY={sys.executable}"],
                   check=True, capture_output=True)
    return out


@pytest.fixture
def fw(firmware_dir, tmp_path) -> Path:
    """A private copy of the firmware images that a test may modify."""
    copy = tmp_path / "fw"
    shutil.copytree(firmware_dir, copy)
    return copy




@pytest.fixture
def reliability() -> Reliability:
    return RELIABILITY


def pytest_sessionfinish(session, exitstatus) -> None:
    """Write the counts of hostile inputs and faults this run tried to build/reliability.md."""
    if RELIABILITY.rows:
        out = ROOT / "build" / "reliability.md"
        out.parent.mkdir(exist_ok=True)
        out.write_text(RELIABILITY.table())


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short directory under /tmp, removed afterwards: UNIX socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="pyhsm-t-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def qemu_binary() -> Path:
    """The build's QEMU; the test fails (naming how to build it) when it is missing."""
    from pyhsm.testing.qtest.machine import QemuMissing, require_qemu
    try:
        return require_qemu()
    except QemuMissing as exc:
        pytest.fail(str(exc), pytrace=False)
