"""AES-XTS over a buffer of many data units in one pass (IEEE 1619; docs/device.md, "AES path").

``cryptography`` does XTS one data unit per cipher object (``unit_by_unit``), and building that
object costs far more than the AES of a 512-byte unit. A buffer of one unit still goes that way; a
buffer of several is done at once: the initial tweak of every unit is encrypted under key 2 in one
AES-ECB call, the tweak of every block is worked out from it by a numba kernel, and the data, masked
with the tweaks, goes through one AES-ECB call under key 1. Only whole 16-byte blocks are handled
(the fast path refuses anything else), so there is no ciphertext stealing. ``unit_by_unit`` is also
the reference the tests and the bench compare the one pass against, bit for bit.

The kernel's work does not depend on any value it handles (shifts, XORs and a multiplication by the
carry bit, no branch on data), so its timing reveals nothing of the tweaks.
"""

from __future__ import annotations

import numba
import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16
_WORDS = np.dtype("<u8")     # a block as two little-endian 64-bit halves: bytes 0-7, bytes 8-15


@numba.njit(cache=True)
def tweak_masks(first: np.ndarray, blocks: int) -> np.ndarray:
    """The tweak of every block: ``first`` (units, 2) uint64 holds each unit's encrypted initial
    tweak; block ``j`` of unit ``i`` gets ``first[i]`` times alpha^j in GF(2^128) (IEEE 1619's
    little-endian convention, reduction polynomial x^128 + x^7 + x^2 + x + 1). Returns
    (units * blocks * 2,) uint64, in buffer order."""
    units = first.shape[0]
    out = np.empty(units * blocks * 2, dtype=np.uint64)
    k = 0
    for i in range(units):
        lo = first[i, 0]
        hi = first[i, 1]
        for _ in range(blocks):
            out[k] = lo
            out[k + 1] = hi
            k += 2
            carry = hi >> np.uint64(63)
            hi = (hi << np.uint64(1)) | (lo >> np.uint64(63))
            lo = (lo << np.uint64(1)) ^ (carry * np.uint64(0x87))
    return out


def unit_by_unit(key1: bytes, key2: bytes, sector: int, data: bytes | bytearray, unit: int,
                 decrypt: bool) -> bytes:
    """XTS-AES with ``cryptography``, one cipher object per data unit of ``unit`` bytes: unit ``i``'s
    initial tweak is ``sector + i`` as a 16-byte little-endian block. What ``crypt`` computes."""
    view, parts = memoryview(data), []
    for i, start in enumerate(range(0, len(data), unit)):
        tweak = ((sector + i) % (1 << 128)).to_bytes(16, "little")
        cipher = Cipher(algorithms.AES(key1 + key2), modes.XTS(tweak))
        worker = cipher.decryptor() if decrypt else cipher.encryptor()
        parts.append(worker.update(view[start:start + unit]))
        worker.finalize()     # XTS keeps nothing back
    return parts[0] if len(parts) == 1 else b"".join(parts)


def crypt(key1: bytes, key2: bytes, sector: int, data: bytes | bytearray, unit: int,
          decrypt: bool) -> bytes:
    """XTS-AES of ``data``, ``len(data) // unit`` data units of ``unit`` bytes each, the first with
    sequence number ``sector`` (0 <= sector < 2^64) and each next one with the next number
    (as ``unit_by_unit``). ``unit`` must be a multiple of 16 that divides ``len(data)`` (``ValueError``
    otherwise). The keys are AES keys of equal length; the caller refuses key1 == key2."""
    if not data or unit <= 0 or unit % BLOCK or len(data) % unit or not 0 <= sector < 1 << 64:
        raise ValueError(f"XTS over {len(data)} bytes in units of {unit} from sector {sector}")
    if unit == len(data):    # one unit: cryptography's own XTS is the quickest
        return unit_by_unit(key1, key2, sector, data, unit, decrypt)
    tweaks = np.empty((len(data) // unit, 2), dtype=_WORDS)
    tweaks[:, 0] = np.arange(len(tweaks), dtype=np.uint64) + np.uint64(sector)   # wraps mod 2^64
    tweaks[:, 1] = tweaks[:, 0] < np.uint64(sector)                              # and carries
    first = Cipher(algorithms.AES(key2), modes.ECB()).encryptor().update(tweaks.view(np.uint8).data)
    masks = tweak_masks(np.frombuffer(first, _WORDS).reshape(-1, 2), unit // BLOCK)
    cipher = Cipher(algorithms.AES(key1), modes.ECB())
    worker = cipher.decryptor() if decrypt else cipher.encryptor()
    inner = worker.update((np.frombuffer(data, _WORDS) ^ masks).view(np.uint8).data)
    return (np.frombuffer(inner, _WORDS) ^ masks).tobytes()


def warm_up() -> None:
    """Load (or compile) the kernel, so the first XTS command does not pay for it."""
    crypt(bytes(32), bytes(range(32)), 0, bytes(64), 32, False)
