"""Drive the azihsm device in QEMU without a guest OS, over QEMU's qtest protocol.

Layers, each in its own module: ``protocol`` (the qtest text client), ``machine`` (launching QEMU),
``memory`` (guest RAM pages), ``pci`` (enumeration, BARs, MSI-X), ``layout`` (register and entry
formats), ``controller`` (the test-side driver, behaving as the guest driver does)
and ``transport`` (the client library's Transport over that driver). The real backend runs as
``pyhsm.host.backend.BackendProcess``; device arguments come from ``pyhsm.host.qemu_devices``.
"""
