"""Level-1 abort, level-2 reset via CC.EN and NSSR, CFS, and the link RESET kinds (docs/device.md, "Controller state"; docs/link-protocol.md)."""

from __future__ import annotations

import pytest

from pyhsm.protocol import layout as L
from pyhsm.protocol import link
from pyhsm.testing.qtest.pci import CAP_ID_MSIX

pytestmark = pytest.mark.qemu


def test_level1_abort_cancels_outstanding_and_restarts_the_sq(rig):
    ctrl, backend = rig.ctrl, rig.backend
    queue = ctrl.queues[1]
    ctrl.hsm(b"warm-up")  # CQ head 1, phase 1
    backend.hold()
    stuck = [ctrl.submit_hsm(1, f"stuck{i}".encode()) for i in range(3)]
    assert backend.wait_for(lambda: len(backend.held) == 3)
    held_ids = backend.held
    abandoned = ctrl.level1_abort(1)
    assert set(abandoned) == set(stuck)
    assert backend.wait_for(lambda: set(held_ids) <= set(backend.cancels)), \
        f"no CANCEL for {held_ids}: {backend.cancels}"
    # Whatever the device posted for the aborted tags says "SQ deleted" on the surviving CQ,
    # whose phase continues; the new SQ starts again at head 0.
    for cid, cqe in abandoned.items():
        assert cqe is None or (cqe.status, cqe.sqid) == (link.Status.ABORTED_SQ_DELETED, 1), cqe
    backend.release()
    result = ctrl.hsm(b"after abort")
    assert (result.cqe.status, result.cqe.sqhd, result.payload) == (0, 1, b"echo:after abort")
    assert not queue.stashed, f"unexpected completions: {queue.stashed}"
    assert ctrl.reap(queue) is None, "a late backend answer produced a completion"
    rig.assert_alive()


def _config_snapshot(ctrl) -> tuple[bytes, list]:
    function = ctrl.function
    header = b"".join(function.read(off).to_bytes(4, "little") for off in range(0, 0x40, 4))
    msix = function.capabilities()[CAP_ID_MSIX]
    control = function.read(msix + 2, 2)
    return header + control.to_bytes(2, "little"), ctrl.msix.entries()


@pytest.mark.parametrize("via_nssr", [False, True], ids=["cc_en", "nssr"])
def test_level2_reset_drops_queues_keeps_config_and_msix(rig, via_nssr):
    ctrl, backend = rig.ctrl, rig.backend
    ctrl.hsm(b"before")
    snapshot = _config_snapshot(ctrl)
    if via_nssr:
        ctrl.nssr()
    else:
        ctrl.disable()
    assert ctrl.csts() & (L.CSTS_RDY | L.CSTS_CFS) == 0
    expected_kind = link.ResetKind.NSSR if via_nssr else link.ResetKind.CONTROLLER
    assert backend.wait_for(lambda: expected_kind in backend.resets), backend.resets
    assert _config_snapshot(ctrl) == snapshot
    ctrl.enable()  # admin queue only: the I/O queues must be gone
    assert ctrl.admin_command(L.AdminOpcode.DELETE_SQ, dw10=1, check=False).status == 0x101
    ctrl.disable()
    ctrl.probe()
    result = ctrl.hsm(b"after")
    assert (result.cqe.status, result.cqe.sqhd, result.cqe.phase) == (0, 1, 1)
    assert ctrl.msix.take(1)
    assert _config_snapshot(ctrl) == snapshot
    rig.assert_alive()


def test_reset_during_a_command_drops_its_late_answer(rig):
    ctrl, backend = rig.ctrl, rig.backend
    backend.hold()
    ctrl.submit_hsm(1, b"in flight")
    assert backend.wait_for(lambda: len(backend.held) == 1)
    ctrl.level2_reset()
    backend.release()
    result = ctrl.hsm(b"fresh")
    assert (result.cqe.status, result.cqe.cid, result.cqe.sqhd) == (0, 0, 1)
    assert result.payload == b"echo:fresh"
    assert ctrl.reap(ctrl.queues[1]) is None


def test_function_reset_sends_reset_kind_3(rig):
    rig.machine.qmp.cmd("system_reset")
    assert rig.backend.wait_for(lambda: link.ResetKind.FUNCTION in rig.backend.resets), rig.backend.resets
    assert rig.ctrl.read32(L.CC) == 0 and rig.ctrl.csts() == 0


@pytest.mark.parametrize("doorbell", ["sq_tail_past_size", "cq_head_past_size", "missing_queue_sq",
                                      "missing_queue_cq", "aes_missing"])
def test_fatal_doorbells_set_cfs_until_reset(rig, doorbell):
    ctrl = rig.ctrl
    size = ctrl.queues[1].size
    offset, value = {
        "sq_tail_past_size": (L.sq_doorbell(1), size),
        "cq_head_past_size": (L.cq_doorbell(1), size + 7),
        "missing_queue_sq": (L.sq_doorbell(9), 1),
        "missing_queue_cq": (L.cq_doorbell(9), 1),
        "aes_missing": (L.sq_doorbell(L.AES_FIRST_QID + 100), 1),
    }[doorbell]
    ctrl.ring(offset, value)
    assert ctrl.csts() & L.CSTS_CFS, f"CSTS={ctrl.csts():#x} after doorbell {offset:#x} <- {value}"
    rig.assert_alive()
    ctrl.level2_reset()
    assert ctrl.csts() & L.CSTS_CFS == 0
    assert ctrl.hsm(b"recovered").cqe.status == 0


def test_admin_queue_outside_ram_sets_cfs(make_rig):
    rig = make_rig(probe=False)
    ctrl = rig.ctrl
    ctrl.write32(L.AQA, L.AQA_ADMIN)
    ctrl.write64(L.ASQ, 0xFFFF_FFF0_0000)
    ctrl.write64(L.ACQ, 0xFFFF_FFF1_0000)
    ctrl.write32(L.CC, L.CC_EN)
    ctrl.ring(L.sq_doorbell(0), 1)
    assert ctrl.csts() & L.CSTS_CFS
    rig.assert_alive()
    ctrl.probe()
    assert ctrl.csts() & L.CSTS_CFS == 0
