"""The host side of a confidential-VM launch: owner tooling, the fabric's provisioning, reference measurements, the data disk and the launch itself (docs/confidential.md)."""
