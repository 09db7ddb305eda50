"""The requester side of the serial-bus mailbox: register driver, MCTP/SPDM requester, pyhsm spdm (docs/serial-mailbox.md)."""
