"""The device side of the backend link: absence, loss, restart, timeout, refusal and malformed frames."""

from __future__ import annotations

import time

import pytest

from pyhsm.protocol import layout as L
from pyhsm.protocol import link
from pyhsm.testing.qtest.controller import ControllerFatal
from tests.device.backend_double import GET_API_REV_REQUEST, echo_handler

pytestmark = pytest.mark.qemu
S = link.Status


def test_hello_names_the_device(make_rig):
    rig = make_rig(serial="AZIHSM-LINK-0007", partition=3)
    hello, = rig.backend.hellos
    assert (hello.major, hello.minor, hello.serial, hello.partition) == (1, link.MINOR, "AZIHSM-LINK-0007", 3)
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
    ("aes_body_too_long", S.BACKEND_UNAVAILABLE),  # an AES_RESPONSE over 1 MiB + 256
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
            "aes_body_too_long": _frame(msg_id, 0x86, b"", length=link.MAX_AES_BODY + 1),
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


def test_answers_split_anywhere_or_sharing_one_write_are_each_read_whole(rig):
    """The device reads the link in chunks that need not match frames (docs/link-protocol.md,
    "Framing"): two answers in one write with the first bytes of the next one's header, the rest of
    that one three bytes at a time, then a header alone before its body. Every command completes with
    its own answer and the link stays up."""
    ctrl, backend = rig.ctrl, rig.backend
    backend.hold()
    cids = [ctrl.submit_hsm(1, f"cmd{i}".encode()) for i in range(4)]
    assert backend.wait_for(lambda: len(backend.held) == 4)
    frames: list[bytes] = []

    def collect(msg_id: int, request: link.Request) -> bytes:
        frames.append(link.encode_frame(msg_id, echo_handler(msg_id, request)))
        return b""

    backend.release(collect)
    backend.handler = echo_handler
    assert len(frames) == 4
    stream = b"".join(frames)
    cut = len(frames[0]) + len(frames[1]) + 5
    third_end = cut - 5 + len(frames[2])
    pieces = [stream[:cut], *(stream[i:min(i + 3, third_end)] for i in range(cut, third_end, 3)),
              stream[third_end:third_end + link.HEADER.size], stream[third_end + link.HEADER.size:]]
    for piece in pieces:
        backend.send_raw(piece)
        time.sleep(0.01)
    assert [ctrl.wait_hsm(1, cid).payload for cid in cids] == [f"echo:cmd{i}".encode() for i in range(4)]
    assert len(backend.hellos) == 1, "the link must not have been dropped"
    rig.assert_alive()


def test_qom_introspection(rig):
    completed = rig.machine.qom_get("commands-completed")
    rig.ctrl.hsm(b"count me")
    assert rig.machine.qom_get("commands-completed") == completed + 1
    assert isinstance(rig.machine.qom_get("link-state"), str)
    assert isinstance(rig.machine.qom_get("queues"), list)


CQ_FIELDS = {"kind", "qid", "format", "base", "size", "head", "tail", "phase", "ien", "vector", "held"}
SQ_FIELDS = {"kind", "qid", "format", "base", "size", "head", "tail", "cqid", "inflight"}


def test_queues_property_is_structured(rig):
    """``queues`` is a list of objects with the fields of docs/device.md (Properties), in slot order,
    agreeing with what the driver created, with the commands waiting for the backend counted per SQ."""
    ctrl, backend = rig.ctrl, rig.backend
    backend.hold()
    cids = [ctrl.submit_hsm(1, b"one"), ctrl.submit_hsm(1, b"two")]
    assert backend.wait_for(lambda: len(backend.held) == 2)
    items = rig.machine.qom_get("queues")
    assert rig.machine.qom_get("inflight") == 2
    backend.release()
    assert [ctrl.wait_hsm(1, cid).cqe.status for cid in cids] == [0, 0]

    created = sorted(ctrl.queues)   # HSM qids, then AES qids: the device's slot order
    assert [(q["kind"], q["qid"]) for q in items] == \
        [("cq", 0), ("sq", 0)] + [(kind, qid) for qid in created for kind in ("cq", "sq")]
    for q in items:
        assert set(q) == (CQ_FIELDS if q["kind"] == "cq" else SQ_FIELDS), q
        assert all(isinstance(q[k], str) for k in ("kind", "format"))
        assert all(isinstance(v, int) for k, v in q.items() if k not in ("kind", "format")), q
        assert q["format"] == ("admin" if q["qid"] == 0 else "hsm" if q["qid"] < L.AES_FIRST_QID
                               else "aes")
    by = {(q["kind"], q["qid"]): q for q in items}
    assert (by["sq", 0]["base"], by["cq", 0]["base"]) == (ctrl.admin.sq_base, ctrl.admin.cq_base)
    assert by["cq", 0]["vector"] == 0 and by["cq", 0]["ien"] is True
    for qid in created:
        queue, sq, cq = ctrl.queues[qid], by["sq", qid], by["cq", qid]
        assert (sq["base"], sq["size"], sq["cqid"]) == (queue.sq_base, queue.size, qid)
        assert (cq["base"], cq["size"], cq["vector"], cq["ien"]) == \
            (queue.cq_base, queue.size, queue.vector, True)
        assert cq["held"] == 0 and cq["phase"] in (0, 1)
        assert sq["inflight"] == (2 if qid == 1 else 0)
    sq1 = by["sq", 1]
    assert sq1["head"] == sq1["tail"] == ctrl.queues[1].sq_tail   # both fetched, neither answered
    assert all(q["inflight"] == 0 for q in rig.machine.qom_get("queues") if q["kind"] == "sq")
