"""The partition's persistent store: one file, encrypted and authenticated at rest, versioned against
rollback, replaced atomically (docs/ddi.md "State file", docs/security.md).

File layout: magic ``AZHSMPS2`` (8) | version (u64 LE, 8) | 12-byte GCM nonce |
AES-256-GCM(ciphertext || 16-byte tag) | SHA-256 of everything before it (32). The GCM key is
``identity.at_rest_key(b"ddi-partition-state")``; the associated data binds the file to its device
serial, partition index and version, so a file copied from another partition or device fails
authentication ("foreign") and a damaged file fails the checksum first ("corrupt").

Rollback: the device's monotonic counter ``partition-N`` holds the version of the latest state. A save
writes version counter+1 (``privfile.write_atomic``: fsynced, renamed, directory fsynced), then advances
the counter. A load accepts version == counter, completes an interrupted save when version ==
counter+1, and refuses anything else as a replayed (older) or forged file. A format-1 file
(``AZHSMPS1``, no version) is accepted only while the counter is 0, and rewritten as format 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyhsm.backend.identity import MonotonicCounters
from pyhsm.backend.privfile import private_dir, write_atomic

MAGIC = b"AZHSMPS2"
MAGIC_V1 = b"AZHSMPS1"
FILE_NAME = "partition.state"
KEY_LABEL = b"ddi-partition-state"
_VERSION = struct.Struct("<Q")
_NONCE = 12
_TAG = 16
_DIGEST = 32


class StateError(Exception):
    """The persisted state cannot be used; it is left in place for inspection."""


class Store:
    """The state file of one partition; ``counter`` names its monotonic counter in ``counters``."""

    def __init__(self, directory: Path, at_rest_key: bytes, binding: str, counters: MonotonicCounters,
                 counter: str) -> None:
        self.path = directory / FILE_NAME
        self._directory = directory
        self._aead = AESGCM(at_rest_key)
        self._binding = binding.encode()
        self._counters = counters
        self._counter = counter
        self._migrate = False

    def load(self) -> dict[str, Any] | None:
        """The stored state, or None if there is none yet. Raises ``StateError``."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read: {exc}") from None
        if data.startswith(MAGIC_V1):
            return self._load_v1(data)
        if len(data) < len(MAGIC) + _VERSION.size + _NONCE + _TAG + _DIGEST:
            raise StateError(f"{self.path}: truncated ({len(data)} bytes)")
        if not data.startswith(MAGIC):
            raise StateError(f"{self.path}: not a partition state file (bad magic)")
        body = self._checked_body(data)
        (version,) = _VERSION.unpack_from(body, len(MAGIC))
        header = len(MAGIC) + _VERSION.size
        plain = self._open(body[header:header + _NONCE], body[header + _NONCE:], MAGIC, version)
        current = self._counters.value(self._counter)
        if version == current + 1:        # the save was written, the counter not yet advanced
            self._counters.advance(self._counter, version)
        elif version != current:
            raise StateError(f"{self.path}: rolled back or replayed (state version {version}, the "
                             f"device's counter is at {current}); refused")
        return _decode(self.path, plain)

    def save(self, state: dict[str, Any]) -> None:
        """Replace the stored state atomically and durably, then advance the device's counter."""
        private_dir(self._directory)
        version = self._counters.value(self._counter) + 1
        nonce = os.urandom(_NONCE)
        ciphertext = self._aead.encrypt(nonce, json.dumps(state).encode(), self._aad(MAGIC, version))
        body = MAGIC + _VERSION.pack(version) + nonce + ciphertext
        write_atomic(self.path, body + hashlib.sha256(body).digest())
        self._counters.advance(self._counter, version)
        self._migrate = False

    @property
    def needs_rewrite(self) -> bool:
        """Whether the loaded file was of an older format and should be saved again."""
        return self._migrate

    def _load_v1(self, data: bytes) -> dict[str, Any]:
        if len(data) < len(MAGIC_V1) + _NONCE + _TAG + _DIGEST:
            raise StateError(f"{self.path}: truncated ({len(data)} bytes)")
        body = self._checked_body(data)
        plain = self._open(body[len(MAGIC_V1):len(MAGIC_V1) + _NONCE], body[len(MAGIC_V1) + _NONCE:],
                           MAGIC_V1, None)
        if self._counters.value(self._counter) != 0:
            raise StateError(f"{self.path}: a format-1 file (no version) where the device has saved "
                             "versioned state: replayed; refused")
        self._migrate = True
        return _decode(self.path, plain)

    def _checked_body(self, data: bytes) -> bytes:
        body, digest = data[:-_DIGEST], data[-_DIGEST:]
        if hashlib.sha256(body).digest() != digest:
            raise StateError(f"{self.path}: corrupt (checksum mismatch; truncated or damaged)")
        return body

    def _aad(self, magic: bytes, version: int | None) -> bytes:
        return magic + (b"" if version is None else _VERSION.pack(version)) + self._binding

    def _open(self, nonce: bytes, ciphertext: bytes, magic: bytes, version: int | None) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, self._aad(magic, version))
        except InvalidTag:
            raise StateError(f"{self.path}: foreign state (does not authenticate for this device "
                             "and partition)") from None


def _decode(path: Path, plain: bytes) -> dict[str, Any]:
    try:
        return json.loads(plain)
    except ValueError as exc:
        raise StateError(f"{path}: undecodable content: {exc}") from None
