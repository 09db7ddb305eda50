"""The package installs from a wheel (not only editable) and a client install needs only cryptography.

The wheel is built from the checkout without build isolation (setuptools comes from
scripts/build-requirements.txt), installed into a temporary directory, and run from outside the
source tree. A client or guest install lacks numba, numpy, libvmi and qemu.qmp: the test hides them
(``sys.modules[name] = None`` makes their import fail) and runs the CLI's help and the client and
guest modules (docs/architecture.md, "Installing").
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HIDDEN = ("numba", "numpy", "libvmi", "qemu")
HIDE = "import sys\nfor name in {names!r}: sys.modules[name] = None\n".format(names=HIDDEN)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the wheel, the directory it is installed in)."""
    work = tmp_path_factory.mktemp("install")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(ROOT)],
                   check=True, cwd=work)
    wheel, = (work / "dist").glob("pyhsm-*.whl")
    subprocess.run(pip + ["install", "--no-deps", "--target", str(work / "site"), str(wheel)], check=True, cwd=work)
    return wheel, work / "site"


def run(site: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("PYHSM_ROOT", None)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env,
                          cwd=site.parent)


def test_the_wheel_declares_only_cryptography_for_a_client(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("METADATA"))
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    unconditional = [r for r in requires if "extra ==" not in r]
    assert [r.split(">")[0].split("=")[0] for r in unconditional] == ["cryptography"], requires
    for name in ("numba", "libvmi", "qemu.qmp"):
        assert any(r.startswith(name) and "extra ==" in r for r in requires), (name, requires)


def test_the_installed_copy_runs_outside_the_tree(installed: tuple[Path, Path]) -> None:
    _, site = installed
    where = run(site, "import pyhsm; print(pyhsm.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(site), where.stdout
    for argv in (["-m", "pyhsm", "--help"], ["-m", "pyhsm", "--version"]):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=site.parent,
                              env={**os.environ, "PYTHONPATH": str(site)})
        assert done.returncode == 0 and "pyhsm" in done.stdout, done.stderr


def test_a_client_install_needs_neither_numba_nor_libvmi(installed: tuple[Path, Path]) -> None:
    _, site = installed
    code = HIDE + (
        "import pyhsm.client, pyhsm.client.ioctl_transport, pyhsm.client.socket_transport\n"
        "import pyhsm.client.serialbus.requester, pyhsm.guest.agent, pyhsm.guest.workloads.default\n"
        "import pyhsm.protocol.ddi.optable, pyhsm.protocol.dice.verify\n"
        "from pyhsm.cli import main\n"
        "main(['--help'])\n")
    done = run(site, code)
    assert done.returncode == 0 and "COMMAND" in done.stdout, done.stderr[-3000:]
    assert "Not installed" in done.stdout and "pyhsm[host]" in done.stdout, done.stdout   # and it says what is left out


def test_the_tree_is_found_through_pyhsm_root(installed: tuple[Path, Path]) -> None:
    _, site = installed
    code = "from pyhsm import paths; print(paths.qemu())"
    missing = run(site, code)
    assert missing.returncode != 0 and "PYHSM_ROOT" in missing.stderr, missing.stderr
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=site.parent,
                           env={**os.environ, "PYTHONPATH": str(site), "PYHSM_ROOT": str(ROOT)})
    assert found.returncode == 0 and found.stdout.strip() == str(ROOT / "build/qemu/qemu-system-x86_64"), found.stderr
