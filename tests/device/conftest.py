"""Fixtures for device tests: QEMU under qtest with one azihsm device, linked to a backend double."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

from pyhsm.protocol import link
from pyhsm.testing.qtest.controller import Controller, open_controller
from pyhsm.testing.qtest.machine import Machine, hsm_device_args
from tests.device.backend_double import GET_API_REV_REQUEST, BackendDouble

LINK_UP_TIMEOUT_S = 10.0


@dataclass
class Rig:
    """One QEMU with one azihsm device, its backend double and the test-side driver."""

    machine: Machine
    backend: BackendDouble
    ctrl: Controller

    def wait_link_up(self, qid: int = 1) -> None:
        """Repeat GetApiRev until the device stops answering 0x701 (HELLO_ACK has arrived)."""
        ok = self.backend.wait_for(lambda: self.ctrl.hsm(GET_API_REV_REQUEST, qid).cqe.status
                                   != link.Status.BACKEND_UNAVAILABLE, LINK_UP_TIMEOUT_S)
        assert ok, f"device link did not come up; QEMU log:\n{self.machine.log()}"
        self.backend.requests.clear()

    def assert_alive(self) -> None:
        assert self.machine.alive(), f"QEMU died; log:\n{self.machine.log()}"


RigFactory = Callable[..., Rig]


@pytest.fixture
def make_rig(qemu_binary: Path, workdir: Path) -> Iterator[RigFactory]:
    """Build rigs: ``make_rig(probe=, start_backend=, credits=, hello_result=, hello_delay_s=, **device_props)``;
    device props are ``hsm_device_args`` keywords (serial, res_cnt, timeout_ms, partition, ready_timeout_ms)."""
    made: list[tuple[Machine, BackendDouble]] = []

    def make(*, probe: bool = True, start_backend: bool = True, credits: int = 32,
             hello_result: int = link.HelloAck.ACCEPTED, hello_delay_s: float = 0.0,
             hello_minor: int = link.MINOR, **props: object) -> Rig:
        backend = BackendDouble(workdir / "hsm.sock", credits=credits, hello_result=hello_result,
                                hello_delay_s=hello_delay_s, hello_minor=hello_minor)
        if start_backend:
            backend.start()
        machine = Machine(hsm_device_args(backend.path, **props))
        made.append((machine, backend))
        machine.start()
        rig = Rig(machine, backend, open_controller(machine.qtest))
        if probe:
            rig.ctrl.probe()
            if start_backend and hello_result == link.HelloAck.ACCEPTED:
                rig.wait_link_up()
        return rig

    yield make
    for machine, backend in made:
        machine.stop()
        backend.shutdown()


@pytest.fixture
def rig(make_rig: RigFactory) -> Rig:
    """A probed device (res-cnt 1) with its link up."""
    return make_rig()
