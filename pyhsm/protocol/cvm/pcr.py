"""PCR arithmetic for measurement policies: extends, expected values, the policy digest."""

from __future__ import annotations

import hashlib
import struct
from typing import Iterable

from pyhsm.protocol.cvm.tpm2 import HASHES, HashAlg

MAX_PCR = 24


def extend(bank: HashAlg, value: bytes, measurement: bytes) -> bytes:
    """PCR_new = H(PCR_old || measurement); ``measurement`` is already a digest of the bank's size."""
    if len(measurement) != bank.size or len(value) != bank.size:
        raise ValueError(f"{bank.name} extends take {bank.size}-byte digests")
    return bank.digest(value + measurement)


def replay(bank: HashAlg, measurements: Iterable[bytes], initial: bytes | None = None) -> bytes:
    """The value of a PCR after extending ``measurements`` in order from ``initial`` (zeros)."""
    value = initial if initial is not None else bytes(bank.size)
    for m in measurements:
        value = extend(bank, value, m)
    return value


def pcrs_of(mask: int) -> list[int]:
    return [i for i in range(MAX_PCR) if mask >> i & 1]


def check_policy_shape(bank_id: int, mask: int, values: bytes) -> HashAlg:
    """The bank of a well-formed policy; ValueError names what is wrong."""
    bank = HASHES.get(bank_id)
    if bank is None:
        raise ValueError(f"unknown PCR bank 0x{bank_id:04x}")
    if mask == 0 or mask >> MAX_PCR:
        raise ValueError(f"PCR mask 0x{mask:x} must select PCRs among 0-{MAX_PCR - 1}")
    if len(values) != bank.size * len(pcrs_of(mask)):
        raise ValueError(f"{len(values)} bytes of values for {len(pcrs_of(mask))} {bank.name} PCRs")
    return bank


def policy_digest(bank_id: int, mask: int, values: bytes) -> bytes:
    """SHA-384(u16be bank || u32be mask || expected values): what sealed blobs are bound to."""
    return hashlib.sha384(struct.pack(">HI", bank_id, mask) + values).digest()


def expected_values(bank_id: int, mask: int, values: bytes) -> dict[tuple[int, int], bytes]:
    """(bank, PCR) -> expected value for a well-formed policy."""
    bank = check_policy_shape(bank_id, mask, values)
    return {(bank_id, pcr): values[i * bank.size:(i + 1) * bank.size] for i, pcr in enumerate(pcrs_of(mask))}
