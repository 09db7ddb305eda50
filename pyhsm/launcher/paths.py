"""Where the launcher finds its parts in the source tree (the package is installed editable)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
QEMU = BUILD / "qemu" / "qemu-system-x86_64"
QEMU_FIRMWARE = BUILD / "qemu" / "firmware"
IMAGES_OUT = BUILD / "images"
IMAGE_BUILDER = ROOT / "images" / "build.py"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
