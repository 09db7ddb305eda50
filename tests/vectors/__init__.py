"""Test vectors kept in the tree (the shared ``../shared/vectors`` set has no XTS): ``xts_aes256.json``
holds IEEE Std 1619-2007 Annex B vector 10 and NIST CAVP XTSGenAES256 cases (the file names its
sources), each checked against ``cryptography`` when the file was written."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class XtsVector:
    id: str
    decrypt: bool           # the source lists it as a decrypt case (input ct, output pt)
    key1: bytes             # data key
    key2: bytes             # tweak key
    tweak: bytes            # the data unit sequence number as the device's 16-byte tweak (little-endian)
    pt: bytes
    ct: bytes


def xts_aes256() -> list[XtsVector]:
    """Every XTS-AES-256 case: one data unit each, the whole buffer (the fast path's DUL 0)."""
    raw = json.loads((HERE / "xts_aes256.json").read_text())
    out = []
    for case in raw["cases"]:
        key = bytes.fromhex(case["key"])
        assert case["data_unit_bits"] % 128 == 0 and len(case["pt"]) * 4 == case["data_unit_bits"]
        out.append(XtsVector(case["id"], case["op"] == "decrypt", key[:32], key[32:],
                             case["tweak"].to_bytes(16, "little"), bytes.fromhex(case["pt"]),
                             bytes.fromhex(case["ct"])))
    return out
