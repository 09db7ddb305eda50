"""The HSM's serial-bus mailbox: MCTP over SMBus/I2C (DSP0236, DSP0237) with MCTP control, an SPDM 1.2
responder, Microsoft/Cerberus vendor-defined messages and a management subset of DDI
(docs/serial-mailbox.md).

One module per concern: ``record`` (declared binary layouts), ``dispatch`` (request tables),
``chunking`` (certificate portions), ``mctp`` (DSP0237 packets and PEC, transport header, reassembly,
fragmentation), ``control`` (MCTP control), ``spdm`` (the
responder), ``vdm`` (vendor-defined PCI messages), ``endpoint`` (one HSM's serial endpoint),
``link`` (the backend side of the QEMU device's link), ``mailbox`` (the host side of the register
mailbox), ``requester`` (MCTP/SPDM requester and verification), ``commands`` (``pyhsm spdm``).
"""
