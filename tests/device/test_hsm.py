"""HSM queues: real MBOR through PRPs, every CQE field, phase wrap, SQ full, several queues, AES stubs."""

from __future__ import annotations

import pytest

from pyhsm.protocol import layout as L
from pyhsm.protocol import link
from pyhsm.protocol.link import SessionFlags, SessionOp
from pyhsm.testing.qtest.controller import QueueFull
from pyhsm.testing.qtest.transport import QtestTransport
from tests.device.backend_double import GET_API_REV_REQUEST, GET_API_REV_RESPONSE

pytestmark = pytest.mark.qemu


def test_get_api_rev_bytes_and_every_cqe_field(rig):
    ctrl, backend = rig.ctrl, rig.backend
    rig.ctrl.msix.take(1)
    cid = ctrl.submit_hsm(1, GET_API_REV_REQUEST)
    result = ctrl.wait_hsm(1, cid)
    (msg_id, request), = backend.requests
    assert request.payload == GET_API_REV_REQUEST
    assert (request.qid, request.cid, request.opc, request.dst_len) == (1, cid, 0, L.MAX_TRANSFER)
    assert (request.session_flags, request.session_id) == (0, 0)
    assert result.payload == GET_API_REV_RESPONSE
    cqe = result.cqe
    assert (cqe.status, cqe.byte_count) == (0, len(GET_API_REV_RESPONSE)) == (0, 58)
    assert (cqe.session_flags, cqe.session_id, cqe.short_app_id) == (0, 0, 0)
    assert (cqe.sqid, cqe.cid) == (1, cid)
    assert cqe.sqhd == ctrl.queues[1].sq_tail  # the device consumed everything submitted
    assert ctrl.msix.take(1), "HSM queue 1 completion raised no MSI-X vector 1"


@pytest.mark.parametrize("op,answer_flags", [
    (SessionOp.NONE, 0b00000),
    (SessionOp.OPEN, 0b01101),  # op 1, in_session_cmd, short_app_id_valid
    (SessionOp.CLOSE, 0b10110),  # op 2, in_session_cmd, safe_to_close
    (SessionOp.IN_SESSION, 0b00111),  # op 3, in_session_cmd
])
def test_session_side_band_travels_both_ways(rig, op, answer_flags):
    flags = SessionFlags(op, id_valid=op in (SessionOp.CLOSE, SessionOp.IN_SESSION))
    result = rig.ctrl.hsm(b"\xa2session", session_flags=flags.to_byte(), session_id=0x0042)
    (_, request), = rig.backend.requests
    assert (request.session_flags, request.session_id) == (flags.to_byte(), 0x0042)
    assert result.cqe.status == 0
    assert result.cqe.session_flags == answer_flags
    assert result.cqe.session_id == 0x0042
    assert result.cqe.short_app_id == (7 if op == SessionOp.OPEN else 0)


def test_transport_protocol_over_qtest(rig):
    transport = QtestTransport(rig.ctrl)
    done = transport.submit(GET_API_REV_REQUEST, SessionFlags())
    assert (done.status, done.payload) == (0, GET_API_REV_RESPONSE)
    opened = transport.submit(b"open", SessionFlags(SessionOp.OPEN))
    assert opened.flags.id_valid and opened.session_id == 0x0042
    transport.close()  # flushes the open session: opc 1, CLOSE | in_session, no buffers
    flush = rig.backend.requests[-1][1]
    assert (flush.opc, flush.payload, flush.dst_len, flush.session_id) == (1, b"", 0, 0x0042)
    assert flush.flags == SessionFlags(SessionOp.CLOSE, id_valid=True)


@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 8192])
def test_two_page_requests_and_responses(rig, size):
    body = bytes((i * 7 + 3) & 0xFF for i in range(size))
    rig.backend.handler = lambda msg_id, req: link.Response(0, 0, 0, 0, req.payload[::-1])
    result = rig.ctrl.hsm(body)
    assert rig.backend.requests[0][1].payload == body
    assert result.cqe.byte_count == size
    assert result.payload == body[::-1]


def test_response_capped_by_dst_len_is_written_whole(rig):
    rig.backend.handler = lambda msg_id, req: link.Response(0, 0, 0, 0, b"x" * req.dst_len)
    result = rig.ctrl.hsm(b"q", dst_len=100)
    assert (result.cqe.status, result.cqe.byte_count, result.payload) == (0, 100, b"x" * 100)


def test_flush_session_opc1_is_forwarded(rig):
    close = SessionFlags(SessionOp.CLOSE, id_valid=True).to_byte()
    result = rig.ctrl.hsm(b"", opc=1, session_flags=close, session_id=9, dst_len=0)
    (_, request), = rig.backend.requests
    assert (request.opc, request.payload, request.session_id) == (1, b"", 9)
    assert result.cqe.status == 0 and result.cqe.session_flags & 0b10100 == 0b10100


def test_phase_wraps_over_three_laps(rig):
    queue = rig.ctrl.queues[1]
    done = queue.sq_tail  # commands already completed on this queue (the link check)
    phases, heads = [], []
    for i in range(3 * queue.size + 5):
        cqe = rig.ctrl.hsm(i.to_bytes(4, "little")).cqe
        assert cqe.status == 0
        phases.append(cqe.phase)
        heads.append(cqe.sqhd)
    assert phases == [1 - ((done + i) // queue.size) % 2 for i in range(len(phases))]
    assert heads == [(done + i + 1) % queue.size for i in range(len(heads))]


def test_sq_full_holds_and_recovers(rig):
    ctrl, backend = rig.ctrl, rig.backend
    queue = ctrl.queues[1]
    backend.hold()
    cids = [ctrl.submit_hsm(1, bytes([i])) for i in range(queue.size - 1)]
    with pytest.raises(QueueFull):
        ctrl.submit_hsm(1, b"one too many")
    assert backend.wait_for(lambda: len(backend.held) == queue.size - 1), backend.held
    assert ctrl.reap(queue) is None
    backend.release()
    results = [ctrl.wait_hsm(1, cid) for cid in cids]
    assert all(r.cqe.status == 0 for r in results)
    assert results[-1].cqe.sqhd == queue.sq_tail
    assert ctrl.hsm(b"after").cqe.status == 0


def test_credits_limit_requests_in_flight(make_rig):
    rig = make_rig(credits=2)
    ctrl, backend = rig.ctrl, rig.backend
    backend.hold()
    cids = [ctrl.submit_hsm(1, bytes([i])) for i in range(6)]
    assert backend.wait_for(lambda: len(backend.held) == 2)
    assert not backend.wait_for(lambda: len(backend.held) > 2, 0.3), "device exceeded its credits"
    for _ in range(3):
        backend.release()
        backend.hold()
        assert backend.wait_for(lambda: len(backend.held) == 2 or len(backend.requests) == 6)
    backend.release()
    assert [ctrl.wait_hsm(1, cid).cqe.status for cid in cids] == [0] * 6
    assert backend.max_in_flight == 2


def test_out_of_order_completions_keep_their_cids(rig):
    ctrl, backend = rig.ctrl, rig.backend
    backend.hold()
    cids = [ctrl.submit_hsm(1, f"cmd{i}".encode()) for i in range(5)]
    assert backend.wait_for(lambda: len(backend.held) == 5)
    backend.release(order=lambda ids: ids[::-1])
    for i, cid in enumerate(cids):
        result = ctrl.wait_hsm(1, cid)
        assert (result.cqe.cid, result.payload) == (cid, f"echo:cmd{i}".encode())


def test_four_queues_at_once_with_their_vectors(make_rig):
    rig = make_rig(res_cnt=4)
    ctrl = rig.ctrl
    hsm_qids = sorted(q for q in ctrl.queues if q < L.AES_FIRST_QID)
    assert hsm_qids == [1, 2, 3, 4]
    assert [ctrl.queues[q].vector for q in hsm_qids] == [1, 2, 3, 4]
    for vector in range(32):
        ctrl.msix.take(vector)
    pending = [(q, ctrl.submit_hsm(q, f"q{q}c{n}".encode())) for n in range(5) for q in hsm_qids]
    for qid, cid in pending:
        result = ctrl.wait_hsm(qid, cid)
        assert (result.cqe.status, result.cqe.sqid, result.cqe.cid) == (0, qid, cid)
        assert result.payload.startswith(f"echo:q{qid}c".encode())
    assert all(ctrl.queues[q].sq_head == ctrl.queues[q].sq_tail for q in hsm_qids)
    assert [ctrl.msix.take(v) for v in (1, 2, 3, 4)] == [True] * 4
    assert not ctrl.msix.take(5), "vector 5 belongs to no queue"


def test_aes_commands_complete_not_supported_by_a_link_1_0_backend(make_rig):
    rig = make_rig(hello_minor=0)
    ctrl = rig.ctrl
    queue = ctrl.queues[L.AES_FIRST_QID]
    assert queue.vector == L.AES_FIRST_VECTOR
    ctrl.msix.take(L.AES_FIRST_VECTOR)
    data = ctrl.memory.alloc(4096)
    sgl = L.sgl_descriptor(data, 16)
    ctrl.submit(queue, L.AesSqe(attr=0x002C, cid=3, src_len=16, src_sgl=sgl, dst_len=16, dst_sgl=sgl).pack(), 3)
    cqe = ctrl.wait(queue, 3)
    assert (cqe.cid, cqe.sqid, cqe.sqhd, cqe.phase) == (3, L.AES_FIRST_QID, 1, 1)
    assert cqe.status == link.Status.NOT_SUPPORTED and cqe.err != 0
    assert ctrl.msix.take(L.AES_FIRST_VECTOR)
    assert rig.backend.requests == [] and rig.backend.aes_requests == []


def test_full_cq_holds_completions_until_the_head_doorbell(rig):
    ctrl, backend = rig.ctrl, rig.backend
    queue = ctrl.queues[1]
    first = [ctrl.submit_hsm(1, bytes([i])) for i in range(queue.size - 1)]  # fills the CQ exactly
    taken = []
    assert backend.wait_for(lambda: (cqe := ctrl.reap(queue, ring=False)) is None or taken.append(cqe)
                            or len(taken) == len(first), 10)
    assert sorted(c.cid for c in taken) == sorted(first)
    # The host has read every CQE but told the device nothing: the CQ is full from its side.
    held_head = queue.cq_head
    more = [ctrl.submit_hsm(1, f"late{i}".encode()) for i in range(3)]
    assert backend.wait_for(lambda: len(backend.requests) == len(first) + 3)
    assert not backend.wait_for(lambda: ctrl.reap(queue, ring=False) is not None, 0.3), \
        "the device posted into a full CQ"
    assert queue.cq_head == held_head
    ctrl.ring(L.cq_doorbell(1), queue.cq_head)
    results = [ctrl.wait_hsm(1, cid) for cid in more]
    assert [r.payload for r in results] == [f"echo:late{i}".encode() for i in range(3)]
    rig.assert_alive()


def test_transport_raises_oserror_when_qemu_is_gone(rig):
    transport = QtestTransport(rig.ctrl)
    rig.machine.process.kill()
    rig.machine.process.wait(10)
    with pytest.raises(OSError):
        transport.submit(GET_API_REV_REQUEST, SessionFlags())
