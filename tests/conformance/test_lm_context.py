"""Mirrors lm_context.rs of the vendor's DDI integration tests (docs/conformance.md). The vendor
waits for the host to migrate the VM (a flag file) between set-up and recovery; here the migration
is what the device presents after one, an NSSR. Physical only, like the vendor's."""

from __future__ import annotations

from tests.conformance.vendor import Device, physical_only, recover, setup_for_lm


def test_lm_context_save_and_restore(device: Device) -> None:
    physical_only(device)
    lm = setup_for_lm(device)
    device.nssr()
    reopened = recover(lm)
    assert reopened.sess_id == lm.session_id and reopened.bmk_session
    assert lm.handle.get_sealed_bk3() == lm.masked_bk3
