"""The HSM itself: link server, partitions, key store, DDI handlers, root of trust, serial-bus endpoint (docs/architecture.md). Imported only by the CLI and pyhsm.testing."""
