"""Guest introspection from outside the VM: physical memory (the memory-backend file of
``pyhsm run --debug``, or a QMP dump), the kernel's processes and log, the driver's queue rings,
and a scan for HSM secrets.

``memory`` reads guest-physical memory; ``elf`` and ``btf`` read the kernel image; ``profile`` derives
the symbols and structure offsets introspection needs from the guest's own ``vmlinuz``; ``kernel``
translates kernel addresses and walks processes and the printk ring; ``rings`` decodes the SQ/CQ
entries; ``scan`` finds byte strings; ``commands`` is ``pyhsm inspect``.
"""
