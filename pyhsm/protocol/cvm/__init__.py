"""Confidential-VM support shared by the HSM, the host tooling and the guest agent: TPM 2.0 structures,
PCR arithmetic, owner-command signing, the countersigned evidence statement and hybrid key wrapping
(docs/vendor-ops.md)."""
