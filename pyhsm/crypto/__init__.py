"""Cryptographic building blocks shared by every layer: CBOR and COSE, key derivation, post-quantum providers (docs/architecture.md)."""
