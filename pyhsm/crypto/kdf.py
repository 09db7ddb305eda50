"""Key derivation as the DDI uses it (docs/ddi.md, "Key derivation"): HKDF (RFC 5869) and SP 800-108 counter/HMAC."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode


def hkdf(hash_cls: type[hashes.HashAlgorithm], ikm: bytes, salt: bytes | None, info: bytes | None,
         length: int) -> bytes:
    """RFC 5869 extract-and-expand; an absent salt is the empty salt."""
    return HKDF(hash_cls(), length, salt or None, info or b"").derive(ikm)


def kbkdf(hash_cls: type[hashes.HashAlgorithm], key: bytes, label: bytes | None, context: bytes | None,
          length: int) -> bytes:
    """SP 800-108 counter mode: HMAC(key, [i]_32 || label || 0x00 || context || [L]_32).

    The 0x00 separator and L are present even when label and context are absent.
    """
    return KBKDFHMAC(hash_cls(), Mode.CounterMode, length, 4, 4, CounterLocation.BeforeFixed,
                     label or b"", context or b"", None).derive(key)


def kbkdf384(key: bytes, label: bytes | None, context: bytes | None, length: int) -> bytes:
    return kbkdf(hashes.SHA384, key, label, context, length)
