"""Test drivers: the qtest-driven device (docs/architecture.md)."""
