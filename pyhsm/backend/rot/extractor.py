"""Fuzzy extractor: code-offset construction over RM(1,7) followed by an HMAC-SHA-384 extractor.

Enrolment: pick random messages m (one byte per 128-cell block), helper = w XOR RM(m), a random salt,
UDS = HMAC-SHA-384(salt, pack(w)), check = HMAC-SHA-384(UDS, "check"). Reconstruction: decode
w' XOR helper to m', rebuild w = helper XOR RM(m'), recompute the UDS and compare its check value;
a mismatch means the error rate was beyond what the code corrects, and is reported, never hidden.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from math import comb

import numpy as np

from pyhsm.backend.rot import kernels
from pyhsm.protocol.dice.errors import RootOfTrustFailure

HELPER_FORMAT = 1
UDS_BYTES = 48
_CHECK_LABEL = b"AZIHSM-UDS-CHECK-V1"


@dataclass(frozen=True)
class HelperData:
    """Public helper data kept in the device's NV store."""
    offset: np.ndarray   # uint8 bits, one per PUF cell: w XOR RM(m)
    salt: bytes          # extractor seed
    check: bytes         # HMAC-SHA-384(UDS, label): detects a wrong reconstruction

    def to_json(self) -> dict:
        return {"format": HELPER_FORMAT, "cells": int(self.offset.size),
                "offset": base64.b64encode(np.packbits(self.offset).tobytes()).decode(),
                "salt": self.salt.hex(), "check": self.check.hex()}

    @classmethod
    def from_json(cls, data: dict) -> "HelperData":
        if data.get("format") != HELPER_FORMAT:
            raise RootOfTrustFailure("helper data: unknown format")
        cells = int(data["cells"])
        packed = np.frombuffer(base64.b64decode(data["offset"]), dtype=np.uint8)
        offset = np.unpackbits(packed)[:cells]
        if offset.size != cells or cells % kernels.RM_N:
            raise RootOfTrustFailure("helper data: offset length does not match the cell count")
        return cls(offset=offset, salt=bytes.fromhex(data["salt"]), check=bytes.fromhex(data["check"]))


def enrol(response: np.ndarray) -> tuple[HelperData, bytearray]:
    """Helper data and the UDS for a first PUF read-out (length a multiple of 128)."""
    if response.size % kernels.RM_N:
        raise ValueError("PUF response length must be a multiple of the RM(1,7) block length")
    messages = np.frombuffer(os.urandom(response.size // kernels.RM_N), dtype=np.uint8)
    offset = response ^ kernels.rm_encode(messages).reshape(-1)
    salt = os.urandom(32)
    uds = _extract(salt, response)
    return HelperData(offset=offset, salt=salt, check=_check_value(uds)), uds


def reconstruct(response: np.ndarray, helper: HelperData) -> bytearray:
    """The enrolled UDS from a fresh, noisy read-out; RootOfTrustFailure if it cannot be recovered."""
    if response.size != helper.offset.size:
        raise RootOfTrustFailure(
            f"PUF has {response.size} cells but the helper data was enrolled for {helper.offset.size}")
    received = (response ^ helper.offset).reshape(-1, kernels.RM_N)
    messages = kernels.rm_decode(received)
    recovered = helper.offset ^ kernels.rm_encode(messages).reshape(-1)
    uds = _extract(helper.salt, recovered)
    if not hmac.compare_digest(_check_value(uds), helper.check):
        zeroize(uds)
        errors = int(np.count_nonzero(recovered != response))
        raise RootOfTrustFailure(
            f"fuzzy extractor: reconstructed UDS fails its check value (PUF error rate beyond the "
            f"correctable range; at least {errors / response.size:.3f} of cells differ from the decoded response)")
    return uds


def zeroize(secret: bytearray) -> None:
    """Overwrite a secret in place."""
    secret[:] = bytes(len(secret))


def key_failure_bound(ber: float, blocks: int) -> float:
    """Union bound on P(wrong UDS) for ML decoding of ``blocks`` RM(1,7) blocks at bit-error rate ``ber``.

    Per block: 254 code words at distance 64 and one at 128 from the sent one, each counted as a failure
    when the received word is at least as close to it: 254 P[Bin(64,p) >= 32] + P[Bin(128,p) >= 64].
    """
    def tail(n: int, c: int) -> float:
        return sum(comb(n, k) * ber**k * (1 - ber) ** (n - k) for k in range(c, n + 1))
    return min(1.0, blocks * (254 * tail(64, 32) + tail(128, 64)))


def _extract(salt: bytes, response: np.ndarray) -> bytearray:
    return bytearray(hmac.new(salt, np.packbits(response).tobytes(), hashlib.sha384).digest())


def _check_value(uds: bytearray) -> bytes:
    return hmac.new(uds, _CHECK_LABEL, hashlib.sha384).digest()
