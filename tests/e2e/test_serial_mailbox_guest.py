"""End-to-end: the HSM's serial mailbox from an unmodified Debian guest (i2c-i801, /dev/i2c-N, smbus2),
under TCG: SPDM attestation, GetApiRev over both mailboxes, and both mailboxes one device."""

from __future__ import annotations

from typing import Callable

import pytest

from pyhsm.host.vm import Vm
from tests.e2e.e2e_events import assert_all_ok, run_to_done

pytestmark = [pytest.mark.guest, pytest.mark.qemu]

ATTESTATION_BOUND_MS = 5000   # the goal is 1 s under TCG (docs/serial-mailbox.md); loose for shared CI cores


def test_serial_mailbox_from_the_guest(boot_vm: Callable[..., Vm]) -> None:
    details = assert_all_ok(run_to_done(boot_vm("serial_mailbox", serial="AZIHSM-E2E-I2C")))
    assert details["serial: mailbox on SMBus"]["address"] == "0x41"
    attestation = details["serial: SPDM attestation"]
    assert sorted(attestation["measurements"]) == ["1", "2", "3"]
    assert any("MEASUREMENTS signature verified" in check for check in attestation["checks"])
    assert attestation["ms"] < ATTESTATION_BOUND_MS
    timing = details["serial: GetApiRev serial vs PCIe"]
    assert timing["serial_ms"] > 0 and timing["pcie_ms"] > 0
    assert details["serial: same device as PCIe"]["same_chain"] is True
