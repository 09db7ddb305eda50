"""The HSM's root of trust: SRAM PUF, fuzzy extractor, measured boot and DICE identity (docs/root-of-trust.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pyhsm.protocol.dice.errors import RootOfTrustFailure

if TYPE_CHECKING:
    from pyhsm.backend.rot.device import DiceIdentity, power_on

__all__ = ["DiceIdentity", "RootOfTrustFailure", "power_on"]


def __getattr__(name: str) -> Any:
    """``power_on`` and ``DiceIdentity`` load the PUF kernels (numpy, numba) on first use, so that the
    chain verifier and the firmware parser also run where those are absent (the guest's ``pyhsm spdm``)."""
    if name in ("DiceIdentity", "power_on"):
        from pyhsm.backend.rot import device
        return getattr(device, name)
    raise AttributeError(f"module 'pyhsm.backend.rot' has no attribute {name!r}")
