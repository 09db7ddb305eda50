"""End-to-end: the AES fast path from guest user space (azihsm.ko's GCM and XTS ioctls, the QEMU
device's AES queues, the backend's bulk keys), under TCG: the ioctls, and AES traffic from several
processes through a backend kill and through resets (workloads ``aes``, ``aes_backend_kill``, ``aes_reset``)."""

from __future__ import annotations

from typing import Callable

import pytest

from pyhsm.host.backend import BackendProcess
from pyhsm.host.vm import Vm
from tests.e2e.e2e_events import assert_all_ok, expect_ok, next_step, run_to_done

pytestmark = [pytest.mark.guest, pytest.mark.qemu]


def test_aes_ioctls_from_user_space_with_two_concurrent_processes(boot_vm: Callable[..., Vm]) -> None:
    details = assert_all_ok(run_to_done(boot_vm("aes")))
    assert len(details["AES-GCM round trips"]["sizes_data_aad"]) == 7
    assert "65536/512" in details["AES-XTS round trips"]["sizes_unit"]
    assert details["two concurrent processes"] == {"workers": 2, "rounds_each": 25}
    local = details["completions on the submitting CPU"]   # the workload checks each CPU's counts
    assert sorted(local["interrupts"]) == ["cpu0", "cpu1"], local
    refused = details["AES refusals"]
    assert set(refused) == {"tag mismatch", "wrong key", "XTS key for GCM", "session mismatch"}
    assert refused["tag mismatch"] in ("0x0870004D", "0x08700026")
    assert refused["XTS key for GCM"] == "0x0870000F"
    rates = details["AES throughput"]
    print("AES throughput in the guest:", rates)
    for figure in ("gcm_4096", "xts_4096", "gcm_1048576", "xts_1048576"):
        assert rates[figure]["fastpath_MBps"] > 0 and rates[figure]["guest_MBps"] > 0, figure
        assert rates[figure]["fastpath_polled_MBps"] > 0, figure   # the driver's poll_us set and reset around it
    assert rates["gcm_4096_breakdown"]["ioctl_us"] > 0 and rates["gcm_4096_polled_breakdown"]["ioctl_us"] > 0


# Two HSM and four AES queues (res-cnt 2): the workers' commands spread over several AES queues.
SEVERAL_AES_QUEUES = ("-global", "azihsm.res-cnt=2")
DRIVER_TIMEOUT_S = 6.0   # azihsm's abort_timeout_in_sec default


def test_aes_streams_survive_a_backend_kill(boot_vm: Callable[..., Vm], backend: BackendProcess) -> None:
    """Four guest processes loop GCM/XTS; the backend is SIGKILLed mid-stream: every in-flight and later
    call fails with a defined error within the driver timeout, the guest stays up, and after the restart
    (the device reconnects by itself) every process works again with a new session and its keys
    re-opened by tag."""
    vm = boot_vm("aes_backend_kill", qemu_extra=SEVERAL_AES_QUEUES)
    for step in ("driver bound", "establish credential", "AES keys imported with tags"):
        expect_ok(next_step(vm), step)
    running = expect_ok(next_step(vm), "AES streams running")
    assert running["workers"] == 4 and running["aes_queues"] == 4, running
    backend.kill()
    down = expect_ok(next_step(vm), "AES calls fail while the backend is down")
    assert down["max_failing_call_s"] <= DRIVER_TIMEOUT_S + 2.0, down
    backend.start()
    after = expect_ok(next_step(vm), "AES works again after the backend restart")
    print("AES through a backend kill:", after)
    assert all(n >= 5 for n in after["ok_after_last_error"]) and all(after["errors"]), after
    expect_ok(next_step(vm), "kernel log clean")
    assert vm.wait_for("done", 60)["ok"]


def test_aes_streams_survive_controller_reset_and_nssr(boot_vm: Callable[..., Vm]) -> None:
    """The driver's reset ioctl (CC.EN, then NSSR) while four guest processes loop GCM/XTS: defined
    errors, no hang, then every process works again (after the NSSR with the credential established
    again and the keys re-imported under their tags)."""
    details = assert_all_ok(run_to_done(boot_vm("aes_reset", qemu_extra=SEVERAL_AES_QUEUES)))
    for step in ("AES traffic through a controller reset", "AES traffic through an NSSR"):
        d = details[step]
        print(f"{step}:", d)
        assert d["workers"] == 4 and d["aes_queues"] == 4, d
        assert all(d["errors"]) and all(n >= 5 for n in d["ok_after_last_error"]), d
        assert d["max_failing_call_s"] <= DRIVER_TIMEOUT_S + 2.0, d
    assert details["AES traffic through an NSSR"]["credential"]["credential"] == "established"
