"""pyhsm: the HSM behind the emulated Azure Integrated HSM PCIe device.

Sub-packages: ``link`` (the device-to-backend protocol), ``server`` (the backend process),
``ddi`` (the MBOR-encoded DDI command set), ``client`` (the client library), ``rot`` (root of trust).
"""

__version__ = "0.1.0"
