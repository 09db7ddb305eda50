"""The package type-checks with mypy over the files pyproject.toml [tool.mypy] lists (crypto, protocol,
client, backend); the DDI messages are typed by the generated pyhsm/protocol/ddi/messages.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_is_clean() -> None:
    assert importlib.util.find_spec("mypy") is not None, (
        f"mypy is not installed in {sys.executable}'s environment: install the test extra "
        "(pip install -e '.[test]')")
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"mypy failed:\n{result.stdout}{result.stderr}"
