"""Mirrors prov_part.rs of the vendor's DDI integration tests (docs/conformance.md): provisioning
again after a live-migration reset (NSSR), with a new or the saved partition BMK."""

from __future__ import annotations

import os

from tests.conformance.vendor import CRED_ID, CRED_PIN, POTA_KEY, Device, S, Setup, expect, physical_only, setup_for_lm


def _setup_for_lm(device: Device) -> tuple[bytes, bytes]:
    """common_setup_for_lm: (partition BMK, session seed)."""
    lm = setup_for_lm(device)
    return lm.partition_bmk, lm.seed


def test_part_prov_test_provisioning(setup: Setup) -> None:
    physical_only(setup)
    setup.device.nssr()
    dev = setup.device.open()
    dev.establish_credential(CRED_ID, CRED_PIN, setup.device.bk3(dev), POTA_KEY)
    assert dev.open_session(CRED_ID, CRED_PIN).sess_id is not None


def test_part_prov_test_lm(device: Device) -> None:
    bmk, seed = _setup_for_lm(device)
    device.nssr()
    dev = device.open()
    assert dev.establish_credential(CRED_ID, CRED_PIN, device.bk3(dev), POTA_KEY, bmk=bmk) == bmk
    assert dev.open_session(CRED_ID, CRED_PIN, seed).sess_id is not None


def test_part_prov_fail_then_succeed(device: Device) -> None:
    physical_only(device)
    bmk, seed = _setup_for_lm(device)
    device.nssr()
    dev = device.open()
    expect(S.MaskedKeyDecodeFailed, dev.establish_credential, CRED_ID, CRED_PIN, device.bk3(dev), POTA_KEY,
           bmk=os.urandom(48))
    dev.establish_credential(CRED_ID, CRED_PIN, device.bk3(dev), POTA_KEY, bmk=bmk)
    assert dev.open_session(CRED_ID, CRED_PIN, seed).sess_id is not None
