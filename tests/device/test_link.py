"""The device side of the backend link: absence, loss, restart, timeout, refusal and malformed frames."""

from __future__ import annotations

import time

import pytest
from backend_double import GET_API_REV_REQUEST, echo_handler

from pyhsm import link
from pyhsm.qtest import layout as L
from pyhsm.qtest.controller import ControllerFatal

pytestmark = pytest.mark.qemu
S = link.Status


def test_hello_names_the_device(make_rig):
    rig = make_rig(serial="AZIHSM-LINK-0007", partition=3)
    hello, = rig.backend.hellos
    assert (hello.major, hello.minor, hello.serial, hello.partition) == (1, 0, "AZIHSM-LINK-0007", 3)
    assert hello.max_inflight >= 1


def test_no_backend_means_0x701_then_service_starts_when_it_appears(make_rig):
    rig = make_rig(start_backend=False, ready_timeout_ms=500)  # RDY after 0.5 s: nothing will answer
    result = rig.ctrl.hsm(GET_API_REV_REQUEST)
    assert (result.cqe.status, result.cqe.byte_count) == (S.BACKEND_UNAVAILABLE, 0)
    rig.backend.start()
    rig.wait_link_up()
    assert rig.ctrl.hsm(GET_API_REV_REQUEST).cqe.status == 0


def test_backend_killed_mid_command_then_restarted(make_rig):
    rig = make_rig(timeout_ms=60_000)  # a 0x702 would need a minute: 0x701 must come from the loss
    ctrl, backend = rig.ctrl, rig.backend
    pid = rig.machine.process.pid
    backend.hold()
    cid = ctrl.submit_hsm(1, b"doomed")
    assert backend.wait_for(lambda: len(backend.held) == 1)
    backend.kill()
    result = ctrl.wait_hsm(1, cid, timeout_s=10)
    assert (result.cqe.status, result.cqe.cid) == (S.BACKEND_UNAVAILABLE, cid)
    assert ctrl.hsm(b"while down").cqe.status == S.BACKEND_UNAVAILABLE
    backend.handler = echo_handler
    backend.start()
    rig.wait_link_up()
    assert ctrl.hsm(GET_API_REV_REQUEST).cqe.status == 0
    assert rig.machine.process.pid == pid and len(backend.hellos) == 2


def test_backend_that_never_answers_times_out_with_0x702_and_cancel(make_rig):
    rig = make_rig(timeout_ms=400)
    ctrl, backend = rig.ctrl, rig.backend
    backend.hold()
    start = time.monotonic()
    cid = ctrl.submit_hsm(1, b"silence")
    assert backend.wait_for(lambda: len(backend.held) == 1)
    msg_id, = backend.held
    assert ctrl.reap(ctrl.queues[1]) is None
    result = ctrl.wait_hsm(1, cid, timeout_s=10)
    assert (result.cqe.status, result.cqe.cid) == (S.BACKEND_TIMEOUT, cid)
    assert time.monotonic() - start >= 0.4 * 0.9, "timed out before backend-timeout-ms"
    assert backend.wait_for(lambda: msg_id in backend.cancels), backend.cancels
    backend.release()  # the late answer must be dropped
    assert ctrl.hsm(b"next").payload == b"echo:next"
    assert ctrl.reap(ctrl.queues[1]) is None


@pytest.mark.parametrize("result_code", [link.HelloAck.VERSION_UNSUPPORTED, link.HelloAck.BUSY])
def test_refused_hello_keeps_commands_failing_with_0x701(make_rig, result_code):
    rig = make_rig(hello_result=result_code)
    assert rig.backend.wait_for(lambda: rig.backend.hellos)
    assert rig.ctrl.hsm(GET_API_REV_REQUEST).cqe.status == S.BACKEND_UNAVAILABLE
    assert rig.backend.requests == []
    assert rig.ctrl.csts() & L.CSTS_CFS == 0


def test_root_of_trust_failure_sets_cfs(make_rig):
    rig = make_rig(probe=False, hello_result=link.HelloAck.ROOT_OF_TRUST_FAILURE)
    assert rig.backend.wait_for(lambda: rig.backend.hellos)
    assert rig.backend.wait_for(lambda: rig.ctrl.csts() & L.CSTS_CFS)
    with pytest.raises(ControllerFatal):  # the driver's probe sees the firmware failure
        rig.ctrl.probe()
    rig.assert_alive()


def _frame(msg_id: int, kind: int, body: bytes, *, magic: bytes = link.MAGIC, version: int = 1,
           flags: int = 0, length: int | None = None) -> bytes:
    return link.HEADER.pack(magic, version, kind, flags, msg_id, len(body) if length is None else length) + body


def _response_body(payload: bytes, byte_count: int | None = None) -> bytes:
    count = len(payload) if byte_count is None else byte_count
    return link.Response.LAYOUT.pack(0, 0, 0, 0, count) + payload


@pytest.mark.parametrize("case,status", [
    ("oversize_byte_count", S.BACKEND_PROTOCOL_ERROR),  # more than dst_len
    ("bad_magic", S.BACKEND_UNAVAILABLE),  # link closed, outstanding fail as on loss
    ("bad_version", S.BACKEND_UNAVAILABLE),
    ("nonzero_flags", S.BACKEND_UNAVAILABLE),
    ("unknown_type", S.BACKEND_UNAVAILABLE),
    ("body_too_long", S.BACKEND_UNAVAILABLE),
    ("short_body", None),  # either answer is a precise error; the point is survival
    ("count_mismatch", None),
])
def test_malformed_response_frames(make_rig, case, status):
    rig = make_rig()
    ctrl, backend = rig.ctrl, rig.backend

    def malformed(msg_id: int, request: link.Request) -> bytes:
        return {
            "oversize_byte_count": _frame(msg_id, 0x82, _response_body(b"z" * 64)),
            "bad_magic": _frame(msg_id, 0x82, _response_body(b"ok"), magic=b"XXXX"),
            "bad_version": _frame(msg_id, 0x82, _response_body(b"ok"), version=9),
            "nonzero_flags": _frame(msg_id, 0x82, _response_body(b"ok"), flags=1),
            "unknown_type": _frame(msg_id, 0x7E, _response_body(b"ok")),
            "body_too_long": _frame(msg_id, 0x82, b"", length=link.MAX_BODY + 1),
            "short_body": _frame(msg_id, 0x82, b"\x00\x00"),
            "count_mismatch": _frame(msg_id, 0x82, _response_body(b"ab", byte_count=1000)),
        }[case]

    backend.handler = malformed
    result = ctrl.hsm(b"x", dst_len=16)
    assert result.cqe.status != 0
    if status is not None:
        assert result.cqe.status == status, f"{result.cqe.status:#x}"
    rig.assert_alive()
    backend.handler = echo_handler
    rig.wait_link_up()  # the link recovers on its own (reconnect) without restarting QEMU
    assert ctrl.hsm(GET_API_REV_REQUEST).cqe.status == 0


def test_response_for_unknown_msg_id_is_dropped(rig):
    ctrl, backend = rig.ctrl, rig.backend
    backend.send_raw(link.encode_frame(0xDEAD, link.Response(0, 0, 0, 0, b"stray")))
    result = ctrl.hsm(b"real")
    assert result.payload == b"echo:real"
    assert ctrl.reap(ctrl.queues[1]) is None
    assert len(backend.hellos) == 1, "a stray answer must not break the link"


def test_qom_introspection(rig):
    completed = rig.machine.qom_get("commands-completed")
    rig.ctrl.hsm(b"count me")
    assert rig.machine.qom_get("commands-completed") == completed + 1
    assert isinstance(rig.machine.qom_get("link-state"), str)
    assert isinstance(rig.machine.qom_get("queues"), str)
