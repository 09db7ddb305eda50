"""End-to-end: the AES fast path from guest user space (azihsm.ko's GCM and XTS ioctls, the QEMU
device's AES queues, the backend's bulk keys), under TCG."""

from __future__ import annotations

from typing import Callable

import pytest

from pyhsm.host.vm import Vm

from tests.e2e.e2e_events import assert_all_ok, run_to_done

pytestmark = [pytest.mark.guest, pytest.mark.qemu]


def test_aes_ioctls_from_user_space_with_two_concurrent_processes(boot_vm: Callable[..., Vm]) -> None:
    details = assert_all_ok(run_to_done(boot_vm("aes")))
    assert len(details["AES-GCM round trips"]["sizes_data_aad"]) == 7
    assert "65536/512" in details["AES-XTS round trips"]["sizes_unit"]
    assert details["two concurrent processes"] == {"workers": 2, "rounds_each": 25}
    refused = details["AES refusals"]
    assert set(refused) == {"tag mismatch", "wrong key", "XTS key for GCM", "session mismatch"}
    assert refused["tag mismatch"] in ("0x0870004D", "0x08700026")
    assert refused["XTS key for GCM"] == "0x0870000F"
    rates = details["AES throughput"]
    print("AES throughput in the guest:", rates)
    assert rates["fastpath_gcm_encrypt_MBps"] > 0 and rates["fastpath_xts_encrypt_MBps"] > 0
