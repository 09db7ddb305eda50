"""What the HSM's key store and attestation need from the device's root of trust.

``pyhsm.backend.rot.power_on`` returns an object with this interface; tests may supply their own.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol, Sequence

from cryptography.hazmat.primitives.asymmetric import ec


class MonotonicCounters:
    """Named counters of the device's non-volatile store that never go back (docs/security.md).

    The equivalent of a hardware monotonic counter (or an RPMB write counter): ``advance`` persists the
    new values through ``persist`` (which must be durable: written and fsynced) before it returns.
    Thread-safe.
    """

    def __init__(self, values: dict[str, int], persist: Callable[[dict[str, int]], None]) -> None:
        self._values = dict(values)
        self._persist = persist
        self._lock = threading.Lock()

    def value(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)

    def advance(self, name: str, to: int) -> None:
        """Set counter ``name`` to ``to``, durably. Raises ``ValueError`` if that would move it back."""
        with self._lock:
            current = self._values.get(name, 0)
            if to < current:
                raise ValueError(f"monotonic counter {name} cannot go back from {current} to {to}")
            if to == current:
                return
            values = {**self._values, name: to}
            self._persist(values)
            self._values = values


class DeviceIdentity(Protocol):
    @property
    def serial(self) -> str:
        """The device's serial number."""
        ...

    def at_rest_key(self, label: bytes) -> bytes:
        """A 32-byte key for encrypting persistent state under ``label``.

        Stable across power-ons of the same virtual device; different on every other device.
        """
        ...

    def certificate_chain(self) -> Sequence[bytes]:
        """DER certificates, the device-ID certificate first, the attestation-key certificate last."""
        ...

    def attestation_key(self) -> ec.EllipticCurvePrivateKey:
        """The P-384 attestation key certified by the last certificate. It never leaves the backend."""
        ...

    @property
    def counters(self) -> MonotonicCounters:
        """The device's monotonic counters (one per partition state), kept in its non-volatile store."""
        ...
