"""A partition's migration context: what travels from the source HSM to the destination HSM when its
guest migrates (docs/device.md, "Migration"; docs/security.md, "Migration context").

The record holds what the real device's VF save record holds of the HSM (docs/device.md, "What the
real device does"): a layout version, the session allocation mask, the masked boot key (BK boot masked
under a key derived from the fleet migration key, as the firmware masks it under its fleet-wide
firmware key) and the sealed BK3, with a CRC-32. Queues and registers travel in the device's own
vmstate. The record is sealed with AES-256-GCM under a key derived from the fleet migration key, which
every HSM of the fleet holds and the host never sees; the associated data names the source device and
partition, the source's export counter and the layout version, so the destination can refuse replays
with a monotonic counter per source partition.

Sealed context (all integers little-endian)::

    magic "AZLM" | format u8 (1) | layout major u8 (1) | layout minor u8 (0) | reserved u8 (0)
    | source serial [32] (ASCII, NUL-padded) | source partition u32 | counter u64 | GCM nonce [12]
    | AES-256-GCM(record) with its 16-byte tag           (everything before the ciphertext is the AAD)

Record (the plaintext)::

    layout major u16 | layout minor u16 | session mask u8 | 3 reserved | masked BK boot length u16
    | masked BK boot | sealed BK3 length u16 (0: none) | sealed BK3 | CRC-32 u32 of all before it
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyhsm.backend.ddi import masking
from pyhsm.backend.ddi.provisioning import BKS1, BKS2
from pyhsm.backend.ddi.sessions import MAX_SESSIONS
from pyhsm.crypto.kdf import kbkdf384
from pyhsm.protocol.ddi.types import KeyType
from pyhsm.protocol.link import MAX_LM_CONTEXT, LmContextStatus

MAGIC = b"AZLM"
FORMAT = 1
LAYOUT = (1, 0)                     # the vendor's record layout version 1.0
KEY_LEN = 48                        # the fleet migration key (as the firmware's 48-byte fleet secret)
KEY_FILE = "migration.key"          # in the state directory, unless `pyhsm serve --migration-key FILE`
MAX_MASKED_BK_BOOT = 300            # the vendor record's sizes
MAX_SEALED_BK3 = 512
BK_BOOT_LEN = 80
_HEADER = struct.Struct("<4sBBBx32sIQ12s")
_RECORD_HEAD = struct.Struct("<HHBxxx")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG = 16


class ContextRefused(Exception):
    """A context this backend cannot give or take; ``status`` is the link's answer."""

    def __init__(self, status: LmContextStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Record:
    """The HSM part of the vendor's VF migration record, unmasked."""

    session_mask: int
    bk_boot: bytes                  # 80 bytes (unmasked here; masked on the wire)
    sealed_bk3: bytes | None


@dataclass(frozen=True)
class Opened:
    """A context that authenticated: where it comes from, its counter, and its record."""

    serial: str
    partition: int
    counter: int
    record: Record


def load_key(path: Path) -> bytes:
    """The fleet migration key from ``path``: exactly 48 bytes (raw, or 96 hex digits), a regular file of
    this user (or root) that nobody else may read or write. Raises ``ValueError`` with the reason."""
    info = path.stat()
    if info.st_mode & 0o077:
        raise ValueError(f"{path}: mode {info.st_mode & 0o777:04o}; the migration key must be 0600")
    if info.st_uid not in (os.getuid(), 0):
        raise ValueError(f"{path}: belongs to uid {info.st_uid}, not to this user")
    data = path.read_bytes()
    if len(data) != KEY_LEN:
        try:
            data = bytes.fromhex(data.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            pass
    if len(data) != KEY_LEN:
        raise ValueError(f"{path}: a migration key is {KEY_LEN} bytes (or {2 * KEY_LEN} hex digits)")
    return data


def _seal_key(fleet_key: bytes) -> bytes:
    return kbkdf384(fleet_key, b"LM_CONTEXT_SEAL", BKS1 + BKS2, 32)


def _bk_boot_masking_key(fleet_key: bytes) -> bytes:
    """BKx: what masks BK boot, derived from the fleet key as the firmware derives it from its own."""
    return kbkdf384(fleet_key, b"BK_BOOT_MK_DEFAULT", BKS1 + BKS2, masking.MASKING_KEY_LEN)


def _serial_field(serial: str) -> bytes:
    raw = serial.encode("ascii")
    if not 1 <= len(raw) <= 32:
        raise ValueError(f"serial {serial!r} is not 1-32 ASCII characters")
    return raw.ljust(32, b"\0")


def seal(fleet_key: bytes, serial: str, partition: int, counter: int, record: Record) -> bytes:
    """The sealed context of ``record`` (at most ``MAX_LM_CONTEXT`` bytes)."""
    if len(record.bk_boot) != BK_BOOT_LEN or not 0 <= record.session_mask < 1 << MAX_SESSIONS:
        raise ValueError("record out of range")
    masked_bk_boot = masking.mask(_bk_boot_masking_key(fleet_key), record.bk_boot, masking.Metadata(
        KeyType.AesCbc256Hmac384, 0, 0, bytes(16), BK_BOOT_LEN, svn=1, bks2_index=0, label=b"BKBoot"))
    sealed_bk3 = record.sealed_bk3 or b""
    if len(masked_bk_boot) > MAX_MASKED_BK_BOOT or len(sealed_bk3) > MAX_SEALED_BK3:
        raise ValueError("record field over the vendor's size")
    plain = (_RECORD_HEAD.pack(*LAYOUT, record.session_mask) + _U16.pack(len(masked_bk_boot)) + masked_bk_boot
             + _U16.pack(len(sealed_bk3)) + sealed_bk3)
    plain += _U32.pack(zlib.crc32(plain))
    nonce = os.urandom(12)
    header = _HEADER.pack(MAGIC, FORMAT, *LAYOUT, _serial_field(serial), partition, counter, nonce)
    sealed = header + AESGCM(_seal_key(fleet_key)).encrypt(nonce, plain, header)
    assert len(sealed) <= MAX_LM_CONTEXT
    return sealed


def peek(context: bytes) -> tuple[str, int, int]:
    """(source serial, partition, counter) from a context's header, unauthenticated. Raises
    ``ContextRefused`` (MALFORMED)."""
    if len(context) > MAX_LM_CONTEXT or len(context) < _HEADER.size + _TAG:
        raise ContextRefused(LmContextStatus.MALFORMED, f"context of {len(context)} bytes")
    magic, fmt, major, minor, serial_raw, partition, counter, _ = _HEADER.unpack_from(context)
    if magic != MAGIC or fmt != FORMAT:
        raise ContextRefused(LmContextStatus.MALFORMED, "not a migration context of format 1")
    if major != LAYOUT[0]:
        raise ContextRefused(LmContextStatus.MALFORMED, f"record layout {major}.{minor} is not {LAYOUT[0]}.x")
    serial = serial_raw.rstrip(b"\0")
    if not serial or not all(0x20 <= b <= 0x7E for b in serial):
        raise ContextRefused(LmContextStatus.MALFORMED, "source serial is not printable ASCII")
    return serial.decode("ascii"), partition, counter


def open_context(fleet_key: bytes, context: bytes) -> Opened:
    """Authenticate and decode a sealed context. Raises ``ContextRefused``."""
    serial, partition, counter = peek(context)
    nonce = context[_HEADER.size - 12:_HEADER.size]
    try:
        plain = AESGCM(_seal_key(fleet_key)).decrypt(nonce, context[_HEADER.size:], context[:_HEADER.size])
    except InvalidTag:
        raise ContextRefused(LmContextStatus.NOT_AUTHENTIC,
                             "context does not authenticate under this backend's migration key") from None
    try:
        record = _decode_record(fleet_key, plain)
    except (struct.error, ValueError) as exc:
        raise ContextRefused(LmContextStatus.MALFORMED, f"record: {exc}") from None
    return Opened(serial, partition, counter, record)


def _decode_record(fleet_key: bytes, plain: bytes) -> Record:
    if len(plain) < _RECORD_HEAD.size + 2 * _U16.size + _U32.size:
        raise ValueError("too short")
    (crc,) = _U32.unpack_from(plain, len(plain) - 4)
    if zlib.crc32(plain[:-4]) != crc:
        raise ValueError("CRC mismatch")
    major, _minor, mask = _RECORD_HEAD.unpack_from(plain)
    if major != LAYOUT[0]:
        raise ValueError(f"layout {major}")
    at = _RECORD_HEAD.size
    (n,) = _U16.unpack_from(plain, at)
    masked_bk_boot = plain[at + 2:at + 2 + n]
    at += 2 + n
    (m,) = _U16.unpack_from(plain, at)
    sealed_bk3 = plain[at + 2:at + 2 + m]
    if at + 2 + m != len(plain) - 4 or len(masked_bk_boot) != n or not 0 < n <= MAX_MASKED_BK_BOOT \
            or m > MAX_SEALED_BK3:
        raise ValueError("field lengths")
    meta, bk_boot = masking.unmask(_bk_boot_masking_key(fleet_key), masked_bk_boot)
    if len(bk_boot) != BK_BOOT_LEN or meta.label != b"BKBoot":
        raise ValueError("masked BK boot is not a boot key")
    return Record(mask, bk_boot, sealed_bk3 or None)


def in_counter(serial: str, partition: int) -> str:
    """The destination's monotonic counter of contexts accepted from source ``serial``/``partition``."""
    return f"migration-in-{serial.encode('ascii').hex()}-{partition}"


def out_counter(partition: int) -> str:
    """The source's monotonic counter of contexts exported by ``partition``."""
    return f"migration-out-{partition}"
