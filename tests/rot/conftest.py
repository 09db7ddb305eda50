import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
