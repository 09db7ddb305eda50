"""The HSM's root of trust: SRAM PUF, fuzzy extractor, measured boot and DICE identity."""

from pyhsm.rot.errors import RootOfTrustFailure

__all__ = ["RootOfTrustFailure"]
