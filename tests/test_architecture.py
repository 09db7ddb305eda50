"""The package's layers hold (docs/architecture.md): import-linter checks the contracts declared in
pyproject.toml over every import in pyhsm/, including imports inside functions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed in this environment (pip install '.[test]')"
    done = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0 and "0 broken" in done.stdout, done.stdout[-4000:] + done.stderr[-2000:]


def test_nothing_uses_the_path_of_the_checkout_to_find_itself() -> None:
    # pyhsm.paths is the one place that knows where the tree is
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "pyhsm").rglob("*.py")
                 if "parents[" in p.read_text() and p.name != "paths.py"]
    assert offenders == []
