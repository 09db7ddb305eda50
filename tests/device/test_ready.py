"""CSTS.RDY means ready: after CC.EN it rises when the backend link is up (or the backend has answered
HELLO with a refusal), or after ``ready-timeout-ms`` when no backend answers (docs/device.md)."""

from __future__ import annotations

import time

import pytest

from pyhsm.protocol import layout as L
from pyhsm.protocol import link
from pyhsm.testing.qtest.controller import ControllerFatal, open_controller
from pyhsm.testing.qtest.machine import Machine, hsm_device_args
from tests.device.backend_double import GET_API_REV_REQUEST, GET_API_REV_RESPONSE, BackendDouble

pytestmark = pytest.mark.qemu
S = link.Status
SLOW_POWER_ON_S = 1.5  # a first power-on with a cold JIT takes over a second
MS = 1_000_000  # ns


def _enable_by_hand(ctrl) -> None:
    """Program a fresh admin queue pair and set CC.EN, without waiting for RDY."""
    ctrl.write32(L.AQA, L.AQA_ADMIN)
    ctrl.write64(L.ASQ, ctrl.memory.alloc(4096))
    ctrl.write64(L.ACQ, ctrl.memory.alloc(4096))
    ctrl.write32(L.CC, L.CC_EN)


def _link_state(rig) -> str:
    return rig.machine.qom_get("link-state")


def test_enable_at_start_against_a_slow_first_power_on(make_rig):
    """An independent driver enables the controller as soon as QEMU starts; the backend's first
    HELLO_ACK takes 1.5 s. RDY waits for it, and the first command after probe succeeds."""
    rig = make_rig(probe=False, hello_delay_s=SLOW_POWER_ON_S)
    ctrl, backend = rig.ctrl, rig.backend
    ready_at: list[float] = []
    wait_ready = ctrl.wait_ready

    def recording_wait_ready(enabled: bool) -> None:
        wait_ready(enabled)
        if enabled:
            ready_at.append(time.monotonic())

    ctrl.wait_ready = recording_wait_ready
    ctrl.probe()
    assert backend.hello_ack_times, "RDY rose before the backend answered HELLO"
    assert backend.hello_ack_times[0] < ready_at[0], "RDY rose before the backend answered HELLO"
    result = ctrl.hsm(GET_API_REV_REQUEST)
    assert (result.cqe.status, result.payload) == (0, GET_API_REV_RESPONSE), f"{result.cqe.status:#x}"
    assert len(backend.hellos) == 1 and len(backend.requests) == 1


def test_no_backend_rdy_after_ready_timeout_then_0x701(make_rig):
    rig = make_rig(probe=False, start_backend=False, ready_timeout_ms=1000)
    ctrl = rig.ctrl
    _enable_by_hand(ctrl)
    assert ctrl.csts() & L.CSTS_RDY == 0
    ctrl.qtest.clock_step(999 * MS)  # the timer runs on the virtual clock
    assert ctrl.csts() & L.CSTS_RDY == 0
    ctrl.qtest.clock_step(1 * MS)
    assert ctrl.csts() & (L.CSTS_RDY | L.CSTS_CFS) == L.CSTS_RDY
    ctrl.probe()  # the driver's own enable: another ready-timeout-ms of (stepped) waiting, then the probe
    start = time.monotonic()
    result = ctrl.hsm(GET_API_REV_REQUEST)
    assert (result.cqe.status, result.cqe.byte_count) == (S.BACKEND_UNAVAILABLE, 0)
    assert time.monotonic() - start < 1.0, "0x701 must come at once, not after backend-timeout-ms"
    assert _link_state(rig) == "down"
    rig.assert_alive()


def test_backend_appearing_during_the_wait_raises_rdy(make_rig):
    rig = make_rig(probe=False, start_backend=False)  # default ready-timeout-ms: 5 s of virtual time
    ctrl = rig.ctrl
    _enable_by_hand(ctrl)
    assert ctrl.csts() & L.CSTS_RDY == 0
    rig.backend.start()  # the chardev reconnects by itself; no virtual time passes
    assert rig.backend.wait_for(lambda: ctrl.csts() & L.CSTS_RDY, 10), f"link {_link_state(rig)}"
    assert _link_state(rig) == "up"
    ctrl.probe()
    assert ctrl.hsm(GET_API_REV_REQUEST).cqe.status == 0


def test_default_ready_timeout_is_inside_the_drivers_ready_wait(make_rig):
    rig = make_rig(probe=False, start_backend=False)
    default = rig.machine.qom_get("ready-timeout-ms")
    assert default == 5000
    assert default < (rig.ctrl.cap.to + 1) * 500  # the driver's bound: (CAP.TO + 1) * 500 ms = 8 s


def test_ready_timeout_zero_sets_rdy_at_once(make_rig):
    rig = make_rig(probe=False, start_backend=False, ready_timeout_ms=0)
    _enable_by_hand(rig.ctrl)
    assert rig.ctrl.csts() & (L.CSTS_RDY | L.CSTS_CFS) == L.CSTS_RDY


@pytest.mark.parametrize("result_code", [link.HelloAck.BUSY, link.HelloAck.ROOT_OF_TRUST_FAILURE])
def test_refused_hello_ends_the_wait(make_rig, result_code):
    """A refusal is an answer: RDY rises with it (with CFS for a root-of-trust failure), well before a
    one-minute ready-timeout-ms."""
    rig = make_rig(probe=False, hello_result=result_code, hello_delay_s=0.5, ready_timeout_ms=60_000)
    start = time.monotonic()
    if result_code == link.HelloAck.ROOT_OF_TRUST_FAILURE:
        with pytest.raises(ControllerFatal):
            rig.ctrl.probe()
    else:
        rig.ctrl.probe()
        assert rig.ctrl.hsm(GET_API_REV_REQUEST).cqe.status == S.BACKEND_UNAVAILABLE
    assert time.monotonic() - start < 5
    assert _link_state(rig) == "refused"
    rig.assert_alive()


def test_link_drop_keeps_rdy_and_cc_en_toggle_waits_again(make_rig):
    rig = make_rig(ready_timeout_ms=1000)
    ctrl, backend = rig.ctrl, rig.backend
    backend.kill()
    assert backend.wait_for(lambda: _link_state(rig) == "down")
    assert ctrl.csts() & (L.CSTS_RDY | L.CSTS_CFS) == L.CSTS_RDY  # RDY stays while the link is down
    assert ctrl.hsm(GET_API_REV_REQUEST).cqe.status == S.BACKEND_UNAVAILABLE
    # CC.EN 1->0->1 while the link is down: RDY waits for the link again, at most ready-timeout-ms.
    ctrl.disable()
    _enable_by_hand(ctrl)
    assert ctrl.csts() & L.CSTS_RDY == 0
    ctrl.qtest.clock_step(1000 * MS)
    assert ctrl.csts() & L.CSTS_RDY
    # With the backend back and the link up, CC.EN 1->0->1 gives RDY on the first read.
    backend.start()
    assert backend.wait_for(lambda: _link_state(rig) == "up", 10)
    ctrl.disable()
    _enable_by_hand(ctrl)
    assert ctrl.csts() & (L.CSTS_RDY | L.CSTS_CFS) == L.CSTS_RDY
    ctrl.level2_reset()
    assert ctrl.hsm(GET_API_REV_REQUEST).cqe.status == 0


def test_ready_trace_event(qemu_binary, workdir):
    backend = BackendDouble(workdir / "hsm.sock", hello_delay_s=0.3).start()
    try:
        with Machine([*hsm_device_args(backend.path), "-trace", "azihsm_ready"]) as machine:
            open_controller(machine.qtest).enable()
            assert backend.wait_for(lambda: "azihsm_ready" in machine.log()), machine.log()
            assert "link up" in machine.log(), machine.log()
    finally:
        backend.shutdown()
