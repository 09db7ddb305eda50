"""The masking-key hierarchy (docs/ddi.md, "Masking-key hierarchy"): BK_BOOT -> BK3 -> bk_partition -> MK, and session keys.

Every KDF here is SP 800-108 counter/HMAC-SHA-384. All masking keys are 80 bytes (AES-256 key ||
HMAC-SHA-384 key). BK_BOOT is device-unique (derived from the identity's at-rest key), so masked BK3
blobs from other devices or from the reference simulator are rejected.
"""

from __future__ import annotations

import os

from pyhsm.backend.ddi.masking import MASKING_KEY_LEN, Metadata, mask
from pyhsm.crypto.kdf import kbkdf384
from pyhsm.protocol.ddi.types import KeyType

BKS1 = bytes.fromhex("9b4e4eb7adabdcd6b4d507eb68eb26992abbcab55cfb773bc4d0a88c2102b0ac")
BKS2 = bytes.fromhex("ad1a17e9ed38275e8b305db8190f82b62da25ac6f070a3e1759c6192ccf419a3")
BK3_LEN = 48
SEED_LEN = 48
_ZERO_APP = bytes(16)


def _masking_metadata(label: bytes) -> Metadata:
    return Metadata(KeyType.AesCbc256Hmac384, 0, 0, _ZERO_APP, MASKING_KEY_LEN, svn=1, bks2_index=0, label=label)


def mask_bk3(bk_boot: bytes, bk3: bytes) -> bytes:
    return mask(bk_boot, bk3, Metadata(KeyType.Secret384, 0, 0, _ZERO_APP, BK3_LEN, svn=0, label=b"BK3"))


def bk_partition(bk3: bytes, pota_public_der: bytes) -> bytes:
    """Binds the partition to BK3 and the owner's POTA key; the label is zero-padded to 256 bytes."""
    label = (b"PARTITION_BK" + pota_public_der).ljust(256, b"\0")
    return kbkdf384(bk3, label, BKS1 + BKS2, MASKING_KEY_LEN)


def new_masking_key(wrapping_key: bytes, label: bytes) -> tuple[bytes, bytes]:
    """A fresh 80-byte masking key and its blob masked under ``wrapping_key``: (key, blob)."""
    key = kbkdf384(os.urandom(SEED_LEN), b"MK_DEFAULT", None, MASKING_KEY_LEN)
    return key, mask(wrapping_key, key, _masking_metadata(label))


def new_partition_bmk(bk_part: bytes) -> bytes:
    return new_masking_key(bk_part, b"PARTITION_BK")[1]


def bk_session(bk_part: bytes, seed: bytes) -> bytes:
    return kbkdf384(bk_part[32:], b"SESSION_BK", seed, MASKING_KEY_LEN)


def new_session_bmk(bk_sess: bytes) -> tuple[bytes, bytes]:
    return new_masking_key(bk_sess, b"SMK")
