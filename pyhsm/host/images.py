"""Bring the guest images up to date (images/build.py) and name the files a VM boots from."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pyhsm import paths


@dataclass(frozen=True)
class GuestImages:
    kernel: Path
    initramfs: Path
    rootfs: Path
    driver_status: str   # "built" or "absent: <why>"
    verity: str = ""     # the rootfs's dm-verity tree: "ROOT_HASH,SALT,DATA_BLOCKS" (pyhsm.verity=)


def current(out: Path | None = None) -> GuestImages:
    """The images as they are now in ``out`` (default: the build's); raises ``FileNotFoundError``
    naming a missing one."""
    out = out or paths.images()
    for name in ("vmlinuz", "initramfs.cpio.gz", "rootfs.ext4", "rootfs.verity"):
        path = out / name
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `make images`")
    return GuestImages(out / "vmlinuz", out / "initramfs.cpio.gz", out / "rootfs.ext4",
                       (out / "driver.status").read_text().strip()
                       if (out / "driver.status").exists() else "absent: never built",
                       (out / "rootfs.verity").read_text().strip())


def build(progress: Callable[[str], None]) -> GuestImages:
    """Run the image builder (a no-op when nothing changed), passing each output line to
    ``progress``; raises ``RuntimeError`` with the builder's last lines when it fails."""
    proc = subprocess.Popen([sys.executable, str(paths.image_builder())], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        progress(line.rstrip())
        tail = (tail + [line.rstrip()])[-15:]
    if proc.wait() != 0:
        raise RuntimeError("image build failed: " + " | ".join(tail[-3:]))
    return current()
