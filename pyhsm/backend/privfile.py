"""Private, durable files: the one way the project writes state and secrets to disk (docs/security.md).

Contracts:
- ``write_atomic`` leaves either the old or the new content at ``path``, never a mix: the bytes go to a
  temporary file in the same directory (mode 0600), which is fsynced, renamed over ``path``, and the
  directory is fsynced. A reader never sees a half-written file.
- ``private_dir`` creates a directory (and missing parents) with mode 0700, and refuses a directory
  that another user owns or that others may write to (``UnsafePath``), so nobody else can swap the
  files in it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnsafePath(Exception):
    """A path that another local user could tamper with; the message is a one-line reason."""


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (mode 0600)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    sync_dir(path.parent)


def sync_dir(directory: Path) -> None:
    """fsync a directory, so that a rename or a new entry in it survives a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(directory: Path) -> Path:
    """``directory``, created 0700 if missing; raises ``UnsafePath`` if others could tamper with it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    check_private(directory)
    return directory


def check_private(directory: Path) -> None:
    """Raise ``UnsafePath`` unless ``directory`` is ours (or root's) and writable by nobody else."""
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePath(f"{directory} is not a directory")
    if info.st_uid not in (os.getuid(), 0):
        raise UnsafePath(f"{directory} belongs to uid {info.st_uid}, not to this user ({os.getuid()})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafePath(f"{directory} is writable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
                         f"run: chmod go-w {directory}")
