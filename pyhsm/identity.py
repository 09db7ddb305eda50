"""What the HSM's key store and attestation need from the device's root of trust.

``pyhsm.rot.power_on`` returns an object with this interface; tests may supply their own.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from cryptography.hazmat.primitives.asymmetric import ec


class DeviceIdentity(Protocol):
    serial: str

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
