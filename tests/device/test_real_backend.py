"""The device against the real backend (`pyhsm serve`): GetApiRev byte for byte, sessions flushed on close.

These fail (not skip) when the backend cannot start: the device path is only proven end to end here.
"""

from __future__ import annotations

import time

import pytest

from pyhsm.host.backend import BackendProcess
from pyhsm.protocol import link
from pyhsm.protocol.link import SessionFlags
from pyhsm.testing.qtest.controller import HsmResult, open_controller
from pyhsm.testing.qtest.machine import Machine, hsm_device_args
from pyhsm.testing.qtest.transport import QtestTransport
from tests.device.backend_double import GET_API_REV_REQUEST, GET_API_REV_RESPONSE

pytestmark = pytest.mark.qemu


@pytest.fixture
def real_rig(qemu_binary, workdir):
    with BackendProcess(workdir / "hsm.sock", workdir / "state", workdir / "backend.log") as backend:
        with Machine(hsm_device_args(backend.socket, serial="AZIHSM-QTEST-REAL")) as machine:
            ctrl = open_controller(machine.qtest)
            ctrl.probe()
            yield machine, ctrl, backend


def _until_link_up(ctrl) -> HsmResult:
    """GetApiRev, repeated while the device still reports the link down (HELLO in progress)."""
    deadline = time.monotonic() + 15
    while True:
        result = ctrl.hsm(GET_API_REV_REQUEST)
        if result.cqe.status != link.Status.BACKEND_UNAVAILABLE or time.monotonic() > deadline:
            return result


def test_first_command_after_probe_succeeds_on_a_cold_backend(real_rig):
    """The driver probes as soon as QEMU starts; the backend powers the partition on (fresh state) while
    it answers HELLO. RDY waits for that, so the very first command is served, not answered 0x701."""
    machine, ctrl, backend = real_rig
    result = ctrl.hsm(GET_API_REV_REQUEST)
    assert result.cqe.status == 0, f"status {result.cqe.status:#x}; backend log: {backend.log_tail()}"
    assert result.payload == GET_API_REV_RESPONSE


def test_get_api_rev_through_device_to_real_backend(real_rig):
    machine, ctrl, backend = real_rig
    result = _until_link_up(ctrl)
    assert result.cqe.status == 0, f"status {result.cqe.status:#x}; backend log: {backend.log_tail()}"
    assert result.payload == GET_API_REV_RESPONSE
    assert (result.cqe.byte_count, result.cqe.session_flags, result.cqe.session_id) == (58, 0, 0)
    assert ctrl.msix.take(1)


def test_transport_against_real_backend_survives_a_level2_reset(real_rig):
    machine, ctrl, backend = real_rig
    assert _until_link_up(ctrl).cqe.status == 0
    transport = QtestTransport(ctrl)
    ctrl.level2_reset(via_nssr=True)
    done = transport.submit(GET_API_REV_REQUEST, SessionFlags())
    assert (done.status, done.payload) == (0, GET_API_REV_RESPONSE)
    bad = transport.submit(b"\xff\x00garbage", SessionFlags())
    assert bad.status in (0, link.Status.REQUEST_REJECTED)  # a DDI decode error travels inside MBOR
    assert machine.alive()
