"""Loading the shared NIST ACVP and Wycheproof vectors: ``shared/vectors`` beside the checkout (README
there), or the directory named by ``PYHSM_VECTORS``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

VECTORS = Path(os.environ.get("PYHSM_VECTORS", Path(__file__).resolve().parents[4] / "shared" / "vectors"))


def cases(name: str) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(group, test) pairs of vector file ``name``; fails (not skips) when the file is missing."""
    path = VECTORS / name
    if not path.exists():
        pytest.fail(f"vector file {path} is missing (set PYHSM_VECTORS)")
    for group in json.loads(path.read_text())["testGroups"]:
        for test in group["tests"]:
            yield group, test


def h(value: str) -> bytes:
    return bytes.fromhex(value)
