"""HSM firmware stage images: a fixed header (stage, version, SVN, payload digest) plus the payload.

Image layout, little endian (``HEADER``): magic "AZHSMFW1", u16 layer, u16 reserved (0), u64 security
version number, 16-byte stage name and 32-byte version string (UTF-8, NUL padded), u32 payload length,
48-byte SHA-384 of the payload; then the payload. The measurement of a stage is SHA-384 of the whole
image file, taken before the stage "runs".
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

from pyhsm.protocol.dice.errors import RootOfTrustFailure

MAGIC = b"AZHSMFW1"
HEADER = struct.Struct("<8sHHQ16s32sI48s")
STAGES = ("rom", "bootloader", "runtime")   # boot order; the index is the DICE layer


@dataclass(frozen=True)
class Stage:
    name: str
    layer: int
    version: str
    svn: int
    image: bytes

    @property
    def measurement(self) -> bytes:
        return hashlib.sha384(self.image).digest()


def pack(name: str, version: str, svn: int, payload: bytes) -> bytes:
    """The image file for one stage."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    header = HEADER.pack(MAGIC, STAGES.index(name), 0, svn, name.encode(), version.encode(),
                         len(payload), hashlib.sha384(payload).digest())
    return header + payload


def parse(image: bytes, expected_name: str) -> Stage:
    """A stage from its image; RootOfTrustFailure on a malformed or corrupted image."""
    if len(image) < HEADER.size:
        raise RootOfTrustFailure(f"firmware stage {expected_name}: image shorter than its header")
    magic, layer, reserved, svn, name, version, length, digest = HEADER.unpack_from(image)
    name_s = name.rstrip(b"\0").decode("utf-8", "replace")
    if magic != MAGIC or reserved != 0:
        raise RootOfTrustFailure(f"firmware stage {expected_name}: bad image header")
    if name_s != expected_name or layer != STAGES.index(expected_name):
        raise RootOfTrustFailure(f"firmware stage {expected_name}: image is for stage {name_s!r} layer {layer}")
    payload = image[HEADER.size:]
    if len(payload) != length or hashlib.sha384(payload).digest() != digest:
        raise RootOfTrustFailure(f"firmware stage {expected_name}: payload does not match its header digest")
    return Stage(name=name_s, layer=layer, version=version.rstrip(b"\0").decode("utf-8", "replace"),
                 svn=svn, image=image)


def image_path(firmware_dir: Path, name: str) -> Path:
    return firmware_dir / f"{name}.fw"


def load_stage(firmware_dir: Path, name: str) -> Stage:
    try:
        image = image_path(firmware_dir, name).read_bytes()
    except OSError as e:
        raise RootOfTrustFailure(f"firmware stage {name}: cannot read image: {e.strerror}") from None
    return parse(image, name)
