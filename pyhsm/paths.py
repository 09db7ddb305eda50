"""Where the source tree and its build directory are, found once.

The tree is ``$PYHSM_ROOT`` when set, else the checkout this package sits in (installed editable).
Either must hold ``pyproject.toml`` and ``qemu-device/``; otherwise every function here raises
``SourceTreeNotFound``, at the first call, not at import (the guest imports modules that name these
paths without using them). Everything the tools build lives under ``build()``.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path

ROOT_VARIABLE = "PYHSM_ROOT"
MARKERS = ("pyproject.toml", "qemu-device")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")   # Debian's ovmf package
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")


class SourceTreeNotFound(RuntimeError):
    """Neither ``$PYHSM_ROOT`` nor the package's parent directory is the pyhsm source tree."""


def _is_tree(path: Path) -> bool:
    return all((path / marker).exists() for marker in MARKERS)


@cache
def root() -> Path:
    """The source tree; raises ``SourceTreeNotFound`` naming what was tried."""
    override = os.environ.get(ROOT_VARIABLE)
    if override:
        path = Path(override).resolve()
        if not _is_tree(path):
            raise SourceTreeNotFound(f"{ROOT_VARIABLE}={override} is not the pyhsm source tree "
                                     f"(it lacks {' or '.join(MARKERS)})")
        return path
    path = Path(__file__).resolve().parents[1]
    if not _is_tree(path):
        raise SourceTreeNotFound(f"pyhsm is not running from its source tree ({path} lacks "
                                 f"{' or '.join(MARKERS)}): set {ROOT_VARIABLE} to the checkout")
    return path


def build() -> Path:
    """The build directory (``make`` writes QEMU, images, caches and the venv here)."""
    return root() / "build"


def qemu() -> Path:
    """Our QEMU with the azihsm device (``make qemu``)."""
    return build() / "qemu" / "qemu-system-x86_64"


def qemu_firmware() -> Path:
    """QEMU's firmware directory (``-L``)."""
    return build() / "qemu" / "firmware"


def images() -> Path:
    """The guest images (``make images``)."""
    return build() / "images"


def hsm_firmware() -> Path:
    """The HSM firmware stages (``make firmware``)."""
    return images() / "firmware"


def image_builder() -> Path:
    """The guest image builder script."""
    return root() / "images" / "build.py"


def trace_events() -> Path:
    """The device's trace-event declarations."""
    return root() / "qemu-device" / "trace-events"


def use_numba_cache() -> Path:
    """Point numba's on-disk cache at ``$NUMBA_CACHE_DIR``, by default ``build/numba-cache``, and
    return it. Entry points call this before ``pyhsm.backend.rot.kernels`` is imported (numba picks the
    cache of a ``cache=True`` kernel when the kernel is defined); also when numba is already
    imported."""
    directory = os.environ.setdefault("NUMBA_CACHE_DIR", str(build() / "numba-cache"))
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:
        numba_config.CACHE_DIR = directory   # type: ignore[attr-defined]
    return Path(directory)
