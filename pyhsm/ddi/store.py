"""The partition's persistent store: one file, checksummed and encrypted at rest, replaced atomically.

File layout: magic ``AZHSMPS1`` (8) | 12-byte GCM nonce | AES-256-GCM(ciphertext || 16-byte tag) |
SHA-256 of everything before it (32). The GCM key is ``identity.at_rest_key(b"ddi-partition-state")``
and the associated data binds the file to its device serial and partition index, so a file copied
from another partition or device fails authentication ("foreign"), while a damaged file fails the
checksum first ("corrupt"). Writes go to a temporary file, are fsynced, renamed over the old file,
and the directory is fsynced, so a crash leaves either the old or the new state, never a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"AZHSMPS1"
FILE_NAME = "partition.state"
KEY_LABEL = b"ddi-partition-state"
_NONCE = 12
_DIGEST = 32


class StateError(Exception):
    """The persisted state cannot be used; it is left in place for inspection."""


class Store:
    def __init__(self, directory: Path, at_rest_key: bytes, binding: str) -> None:
        self.path = directory / FILE_NAME
        self._directory = directory
        self._aead = AESGCM(at_rest_key)
        self._aad = MAGIC + binding.encode()

    def load(self) -> dict[str, Any] | None:
        """The stored state, or None if there is none yet. Raises ``StateError``."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read: {exc}") from None
        if len(data) < len(MAGIC) + _NONCE + 16 + _DIGEST:
            raise StateError(f"{self.path}: truncated ({len(data)} bytes)")
        if not data.startswith(MAGIC):
            raise StateError(f"{self.path}: not a partition state file (bad magic)")
        body, digest = data[:-_DIGEST], data[-_DIGEST:]
        if hashlib.sha256(body).digest() != digest:
            raise StateError(f"{self.path}: corrupt (checksum mismatch; truncated or damaged)")
        nonce = body[len(MAGIC):len(MAGIC) + _NONCE]
        try:
            plain = self._aead.decrypt(nonce, body[len(MAGIC) + _NONCE:], self._aad)
        except InvalidTag:
            raise StateError(f"{self.path}: foreign state (does not authenticate for this device "
                             "and partition)") from None
        try:
            return json.loads(plain)
        except ValueError as exc:
            raise StateError(f"{self.path}: undecodable content: {exc}") from None

    def save(self, state: dict[str, Any]) -> None:
        """Replace the stored state atomically and durably."""
        self._directory.mkdir(parents=True, exist_ok=True)
        nonce = os.urandom(_NONCE)
        body = MAGIC + nonce + self._aead.encrypt(nonce, json.dumps(state).encode(), self._aad)
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "wb") as f:
            f.write(body + hashlib.sha256(body).digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, self.path)
        fd = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
