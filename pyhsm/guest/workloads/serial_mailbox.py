"""The HSM over its second mailbox: the serial bus (azihsm-i2c on q35's ICH9 SMBus), from guest user
space through i2c-i801 and /dev/i2c-N with smbus2 (docs/serial-mailbox.md).

Steps: find the mailbox, SPDM attestation (``pyhsm.client.serialbus.requester.attest``), management GetApiRev
over the serial path timed against the PCIe path, and a check that both mailboxes are one device (the
serial endpoint's SPDM leaf certificate and DDI certificate chain equal the PCIe partition's chain).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from pyhsm.client import HsmClient
from pyhsm.client.i2c_transport import I2cTransport, open_i2c
from pyhsm.client.serialbus.mailbox import DEFAULT_ADDRESS, VENDOR_ID, Mailbox
from pyhsm.client.serialbus.requester import MctpRequester, attest
from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.device import close_client, driver_bound, open_client

SMBUS_ADAPTER = "SMBus I801"     # i2c-i801's adapter name prefix
API_REV_ROUNDS = 20


def _adapter() -> int:
    for module in ("i2c-i801", "i2c-dev"):
        subprocess.run(["modprobe", module], check=True, capture_output=True)
    for name in sorted(Path("/sys/class/i2c-dev").glob("i2c-*/name")):
        if name.read_text().startswith(SMBUS_ADAPTER):
            return int(name.parent.name.split("-")[1])
    raise RuntimeError("no i2c-i801 adapter under /sys/class/i2c-dev")


def find_mailbox(context: Context) -> dict[str, Any]:
    bus = _adapter()
    context["i2c"] = open_i2c(bus)
    vendor, version = Mailbox(context["i2c"], DEFAULT_ADDRESS).identify()
    if vendor != VENDOR_ID:
        raise RuntimeError(f"device at 0x{DEFAULT_ADDRESS:02x} on i2c-{bus} has id 0x{vendor:04x}")
    return {"device": f"/dev/i2c-{bus}", "address": f"0x{DEFAULT_ADDRESS:02x}", "interface": version}


def spdm_attestation(context: Context) -> dict[str, Any]:
    started = time.perf_counter()
    result = attest(MctpRequester(Mailbox(context["i2c"], DEFAULT_ADDRESS)))
    context["spdm_leaf"] = result.certificates[-1]
    return {"ms": round((time.perf_counter() - started) * 1000, 1), "checks": result.checks,
            "measurements": {i: d.hex() for i, d in sorted(result.measurements.items())}}


def _mean_ms(client: HsmClient) -> float:
    started = time.perf_counter()
    for _ in range(API_REV_ROUNDS):
        client.get_api_rev()
    return round((time.perf_counter() - started) * 1000 / API_REV_ROUNDS, 3)


def api_rev_both_paths(context: Context) -> dict[str, Any]:
    serial = HsmClient(I2cTransport(Mailbox(context["i2c"], DEFAULT_ADDRESS)))
    context["serial_client"] = serial
    return {"serial_ms": _mean_ms(serial), "pcie_ms": _mean_ms(open_client(context)), "rounds": API_REV_ROUNDS}


def same_device(context: Context) -> dict[str, Any]:
    from cryptography.hazmat.primitives.serialization import Encoding
    pcie, serial = open_client(context), context["serial_client"]
    count = pcie.get_cert_chain_info().num_certs
    pcie_chain = [bytes(pcie.get_certificate(i)) for i in range(count)]
    serial_chain = [bytes(serial.get_certificate(i)) for i in range(serial.get_cert_chain_info().num_certs)]
    if serial_chain != pcie_chain:
        raise RuntimeError("the serial mailbox serves another certificate chain than the PCIe function")
    if context["spdm_leaf"].public_bytes(Encoding.DER) != pcie_chain[-1]:
        raise RuntimeError("the SPDM leaf certificate is not the PCIe function's attestation certificate")
    return {"certificates": count, "same_chain": True}


STEPS = (Step("serial: mailbox on SMBus", find_mailbox), Step("serial: SPDM attestation", spdm_attestation),
         Step("serial: GetApiRev serial vs PCIe", api_rev_both_paths),
         Step("serial: same device as PCIe", same_device))

WORKLOAD = Workload(steps=(Step("driver bound", driver_bound), *STEPS), cleanup=close_client)
