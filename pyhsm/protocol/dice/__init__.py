"""Attestation evidence a verifier checks: DICE certificate extensions, chain and report verification, firmware stage images (docs/root-of-trust.md)."""
