"""Masked-key blobs (docs/ddi.md, "Masked key blobs"), byte for byte: AES-256-CBC + HMAC-SHA-384 under an 80-byte key.

Layout (little-endian header): version u16 = 1, algorithm u16 = 1, iv_len, post_iv_pad_len,
metadata_len, post_metadata_pad_len, encrypted_key_len, post_encrypted_key_pad_len, tag_len (u16 each),
34 reserved zero bytes; then IV, pad, MBOR metadata, pad to 4, encrypted key, pad to 4, tag. The tag
is HMAC-SHA-384 over every byte before it. The key is zero-padded to a multiple of 16 and encrypted
with AES-256-CBC under a random IV.
"""

from __future__ import annotations

import hmac as _hmac
import os
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pyhsm.protocol.ddi import mbor
from pyhsm.protocol.ddi.schemas import KEY_ATTRIBUTES, MASKED_KEY_METADATA
from pyhsm.protocol.ddi.types import Flag, KeyType

VERSION = 1
ALG_AES_CBC_HMAC384 = 1
_HEADER = struct.Struct("<7H34x")
IV_LEN = 16
TAG_LEN = 48
MASKING_KEY_LEN = 80


class MaskError(ValueError):
    """A blob that is malformed, tampered with, or masked under another key."""


@dataclass(frozen=True)
class Metadata:
    """What a blob says about its key: kind, flags, owner and names."""

    key_type: int
    flags: int
    owner: int          # virtual session id (session keys) or key tag (app keys), 0 if none
    app_id: bytes
    key_length: int
    svn: int = 1
    key_tag: int | None = None
    bks2_index: int | None = None
    label: bytes = b""

    @property
    def session_key(self) -> bool:
        return bool(self.flags & Flag.SESSION)

    def encode(self) -> bytes:
        blob = struct.pack("<QH16s", self.flags, self.owner, self.app_id).ljust(32, b"\0")
        value = MASKED_KEY_METADATA(svn=self.svn, key_type=self.key_type,
                                    key_attributes=KEY_ATTRIBUTES(blob=blob), bks2_index=self.bks2_index,
                                    key_tag=self.key_tag, key_label=self.label, key_length=self.key_length)
        return mbor.encode(MASKED_KEY_METADATA, value)

    @classmethod
    def decode(cls, data: bytes) -> Metadata:
        value = mbor.decode(MASKED_KEY_METADATA, data)
        flags, owner, app_id = struct.unpack_from("<QH16s", value.key_attributes.blob)
        if any(value.key_attributes.blob[26:]):
            raise MaskError("metadata attribute padding is not zero")
        return cls(value.key_type, flags, owner, app_id, value.key_length, value.svn or 0,
                   value.key_tag, value.bks2_index, value.key_label)


def _pad4(n: int) -> int:
    return -n % 4


def _tag(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key[32:], hashes.SHA384())
    mac.update(data)
    return mac.finalize()


def mask(key: bytes, plaintext: bytes, metadata: Metadata) -> bytes:
    """Mask ``plaintext`` under the 80-byte masking ``key``."""
    if len(key) != MASKING_KEY_LEN:
        raise ValueError("masking key must be 80 bytes")
    iv = os.urandom(IV_LEN)
    meta = metadata.encode()
    padded = plaintext + bytes(-len(plaintext) % 16)
    encryptor = Cipher(algorithms.AES(key[:32]), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    header = struct.pack("<HH", VERSION, ALG_AES_CBC_HMAC384) + _HEADER.pack(
        IV_LEN, 0, len(meta), _pad4(len(meta)), len(encrypted), _pad4(len(encrypted)), TAG_LEN)
    body = header + iv + meta + bytes(_pad4(len(meta))) + encrypted + bytes(_pad4(len(encrypted)))
    return body + _tag(key, body)


def peek_metadata(blob: bytes) -> Metadata:
    """The metadata of a structurally valid blob, *not yet authenticated* (to choose the unmasking key)."""
    return Metadata.decode(_split(blob)[1])


def _split(blob: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(iv, metadata, encrypted key, tag); checks every length and pad."""
    if len(blob) < 4 + _HEADER.size:
        raise MaskError("blob shorter than its header")
    version, algorithm = struct.unpack_from("<HH", blob)
    if version != VERSION or algorithm != ALG_AES_CBC_HMAC384:
        raise MaskError(f"unsupported version {version} / algorithm {algorithm}")
    if any(blob[4 + 14:4 + _HEADER.size]):
        raise MaskError("reserved header bytes are not zero")
    iv_len, iv_pad, meta_len, meta_pad, key_len, key_pad, tag_len = _HEADER.unpack_from(blob, 4)
    if iv_len != IV_LEN or tag_len != TAG_LEN or not meta_len or not key_len or key_len % 16:
        raise MaskError("bad field lengths in header")
    if (iv_len + iv_pad) % 4 or (meta_len + meta_pad) % 4 or (key_len + key_pad) % 4:
        raise MaskError("fields are not padded to 4 bytes")
    pos = 4 + _HEADER.size
    pieces = []
    for length, pad in ((iv_len, iv_pad), (meta_len, meta_pad), (key_len, key_pad)):
        pieces.append(blob[pos:pos + length])
        if any(blob[pos + length:pos + length + pad]):
            raise MaskError("nonzero padding")
        pos += length + pad
    if len(blob) != pos + tag_len:
        raise MaskError(f"blob is {len(blob)} bytes, header implies {pos + tag_len}")
    return pieces[0], pieces[1], pieces[2], blob[pos:]


def unmask(key: bytes, blob: bytes) -> tuple[Metadata, bytes]:
    """Authenticate and decrypt; returns the metadata and the key bytes (``key_length`` long)."""
    iv, meta, encrypted, tag = _split(blob)
    if not _hmac.compare_digest(_tag(key, blob[:-TAG_LEN]), tag):
        raise MaskError("tag mismatch: tampered, or masked under another key")
    try:
        metadata = Metadata.decode(meta)
    except mbor.MborError as exc:
        raise MaskError(f"metadata: {exc}") from None
    decryptor = Cipher(algorithms.AES(key[:32]), modes.CBC(iv)).decryptor()
    plain = decryptor.update(encrypted) + decryptor.finalize()
    if not len(plain) - 16 < metadata.key_length <= len(plain) or any(plain[metadata.key_length:]):
        raise MaskError("key length does not match the encrypted size or padding is not zero")
    return metadata, plain[:metadata.key_length]


def describe(metadata: Metadata) -> str:
    """A log-safe summary."""
    try:
        name = KeyType(metadata.key_type).name
    except ValueError:
        name = str(metadata.key_type)
    return f"{name}, {metadata.key_length} bytes, flags 0x{metadata.flags:x}"
