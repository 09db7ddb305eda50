"""The HSM's serial-bus mailbox, the responder side: MCTP control, an SPDM 1.2 responder,
Microsoft/Cerberus vendor-defined messages and a management subset of DDI (docs/serial-mailbox.md).

The wire formats are in ``pyhsm.protocol.serialbus`` and the requester in ``pyhsm.client.serialbus``.
One module per concern here: ``dispatch`` (request tables), ``chunking`` (certificate portions),
``control`` (MCTP control answers), ``spdm`` (the responder), ``vdm`` (vendor-defined PCI messages),
``endpoint`` (one HSM's serial endpoint), ``link`` (the backend side of the QEMU device's link).
"""
