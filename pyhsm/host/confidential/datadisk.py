"""The confidential data disk: an ext4 file system of given files inside LUKS2, in a raw image file.

Built without device-mapper on the host: ``mke2fs -d`` packs the files, then ``cryptsetup reencrypt
--encrypt`` turns the image into LUKS2 in place (offline, in userspace). The volume key slot is
opened by a 32-byte key from the HSM, a random secret rather than a passphrase, so PBKDF2 at the
minimum iteration count is enough and keeps the unlock fast in a TCG guest.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

HEADER_MB = 16               # room reencrypt takes for the LUKS2 header
FILESYSTEM_MB = 16
LABEL = "pyhsm-data"


def create(image: Path, files: dict[str, bytes], key: bytes) -> None:
    """Write ``image``: LUKS2 (keyslot 0 opened by ``key``) over ext4 holding ``files``
    (relative name to content). Raises ``RuntimeError`` naming the failing tool."""
    stage = image.with_suffix(".files")
    stage.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        (stage / name).write_bytes(content)
    image.unlink(missing_ok=True)
    with open(image, "wb") as raw:
        raw.truncate((HEADER_MB + FILESYSTEM_MB) << 20)
    _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", LABEL, "-d", str(stage), str(image),
          f"{FILESYSTEM_MB}M"])
    _run(["cryptsetup", "reencrypt", "--encrypt", "--type", "luks2", "--batch-mode",
          "--reduce-device-size", f"{HEADER_MB}M", "--pbkdf", "pbkdf2",
          "--pbkdf-force-iterations", "1000", "--key-file", "-", str(image)], key)


def _run(argv: list[str], stdin: bytes = b"") -> None:
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, timeout=120)
    except FileNotFoundError:
        raise RuntimeError(f"{argv[0]} is not installed (Debian packages e2fsprogs, "
                           "cryptsetup-bin)") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed (exit {proc.returncode}): "
                           f"{proc.stderr.decode(errors='replace').strip()[-400:]}")
