"""Wire formats of the serial-bus mailbox: declared records, the MCTP SMBus binding, and the MCTP
control, SPDM and vendor-defined message declarations both sides use (docs/serial-mailbox.md)."""
