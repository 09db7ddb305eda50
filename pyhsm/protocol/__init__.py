"""The wire: link frames, DDI messages and statuses, queue layouts, confidential-VM formats, attestation evidence (docs/architecture.md). Imports only pyhsm.crypto."""
