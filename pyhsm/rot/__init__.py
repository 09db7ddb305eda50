"""The HSM's root of trust: SRAM PUF, fuzzy extractor, measured boot and DICE identity (docs/root-of-trust.md)."""

from pyhsm.rot.device import DiceIdentity, power_on
from pyhsm.rot.errors import RootOfTrustFailure

__all__ = ["DiceIdentity", "RootOfTrustFailure", "power_on"]
