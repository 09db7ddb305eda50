"""Tampered copies of the guest's verified root filesystem, for the refusal tests: one byte of the
guest agent changed (the hash tree left as built), and that rootfs with its hash tree rebuilt, as an
attacker's own build would be (a new root hash)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

from pyhsm.host.images import GuestImages

AGENT_PYC = ("/usr/local/lib/python3.11/dist-packages/pyhsm/guest/workloads/__pycache__/"
             "confidential.cpython-311.pyc")   # what the guest executes (compiled, unchecked-hash)
DOCSTRING = b"The confidential workload"
BLOCK = 4096


def agent_offset(rootfs: Path) -> int:
    """The byte offset in ``rootfs`` of the first letter of the agent's module docstring inside its
    compiled module: flipping its case keeps the module valid (another build's agent would run)."""
    def debugfs(request: str) -> bytes:
        return subprocess.run(["debugfs", "-R", request, str(rootfs)], capture_output=True,
                              check=True).stdout
    at = debugfs(f"cat {AGENT_PYC}").find(DOCSTRING)
    assert at >= 0, f"{AGENT_PYC} in {rootfs} lacks {DOCSTRING!r}"
    block = debugfs(f"bmap {AGENT_PYC} {at // BLOCK}").split()
    assert block and block[-1].isdigit(), f"debugfs found no block of {AGENT_PYC}: {block!r}"
    return int(block[-1]) * BLOCK + at % BLOCK


def with_changed_byte(images: GuestImages, out: Path) -> GuestImages:
    """``images`` with a copy of the rootfs in which one byte of the agent differs (the case of
    one letter of its docstring); the hash tree and ``verity`` are left as built."""
    shutil.copyfile(images.rootfs, out)
    at = agent_offset(out)
    with open(out, "r+b") as image:
        image.seek(at)
        byte = image.read(1)
        image.seek(at)
        image.write(bytes([byte[0] ^ 0x20]))
    return dataclasses.replace(images, rootfs=out)


def with_rebuilt_tree(images: GuestImages) -> GuestImages:
    """``images`` with the hash tree of its rootfs rebuilt in place (same salt and size): the
    consistent image another build would give, with its own root hash in ``verity``."""
    _, salt, blocks = images.verity.split(",")
    format_ = subprocess.run(
        ["veritysetup", "format", "--no-superblock", "--hash=sha256", f"--salt={salt}",
         f"--data-blocks={blocks}", f"--hash-offset={int(blocks) * BLOCK}",
         str(images.rootfs), str(images.rootfs)], capture_output=True, text=True, check=True)
    [root_hash] = [line.split()[-1] for line in format_.stdout.splitlines()
                   if line.startswith("Root hash:")]
    return dataclasses.replace(images, verity=f"{root_hash},{salt},{blocks}")


def verifies(images: GuestImages) -> bool:
    """Whether ``veritysetup verify`` (in user space, no device-mapper) accepts the whole rootfs
    against ``images.verity``."""
    root_hash, salt, blocks = images.verity.split(",")
    return subprocess.run(
        ["veritysetup", "verify", "--no-superblock", "--hash=sha256", f"--salt={salt}",
         f"--data-blocks={blocks}", f"--hash-offset={int(blocks) * BLOCK}",
         str(images.rootfs), str(images.rootfs), root_hash], capture_output=True).returncode == 0
