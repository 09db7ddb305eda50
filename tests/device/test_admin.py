"""Controller registers, the probe sequence and every admin command (docs/device.md, "Controller state", "Admin commands")."""

from __future__ import annotations

import pytest

from pyhsm.protocol import layout as L
from pyhsm.testing.qtest.controller import ControllerError

pytestmark = pytest.mark.qemu
Op = L.AdminOpcode


def test_registers_at_power_on(make_rig):
    ctrl = make_rig(probe=False).ctrl
    cap = ctrl.cap
    assert cap.to == 0x0F
    assert cap.mqes >= 4095
    assert (cap.nssrs, cap.cqr, cap.dstrd) == (1, 1, 0)
    assert ctrl.read32(L.VS) == 0x0001_0400
    assert ctrl.read32(L.CC) == 0
    assert ctrl.csts() == 0


def test_rdy_follows_en_on_the_first_read_once_the_link_is_up(make_rig):
    rig = make_rig(probe=False)
    ctrl = rig.ctrl
    assert rig.backend.wait_for(lambda: rig.machine.qom_get("link-state") == "up")
    ctrl.write32(L.AQA, L.AQA_ADMIN)
    ctrl.write64(L.ASQ, ctrl.memory.alloc(4096))
    ctrl.write64(L.ACQ, ctrl.memory.alloc(4096))
    assert ctrl.read64(L.ASQ) & 0xFFF == 0 and ctrl.read64(L.ASQ) != 0  # 8-byte access round trip
    ctrl.write32(L.CC, L.CC_EN)
    assert ctrl.csts() & (L.CSTS_RDY | L.CSTS_CFS) == L.CSTS_RDY
    ctrl.write32(L.CC, 0)
    assert ctrl.csts() & L.CSTS_RDY == 0


def test_probe_sequence_and_every_admin_completion_field(make_rig):
    rig = make_rig(probe=False)
    ctrl = rig.ctrl
    ctrl.probe()
    opcodes = [sqe.opcode for sqe, _ in ctrl.admin_log]
    # res-cnt 1: Identify, SetFeat 07, (CQ, SQ) x1 HSM, SetFeat C1, (CQ, SQ) x2 AES, GetFeat C2
    assert opcodes == [Op.IDENTIFY, Op.SET_FEATURES, Op.CREATE_CQ, Op.CREATE_SQ, Op.SET_FEATURES,
                       Op.CREATE_CQ, Op.CREATE_SQ, Op.CREATE_CQ, Op.CREATE_SQ, Op.GET_FEATURES]
    for index, (sqe, cqe) in enumerate(ctrl.admin_log):
        assert cqe.status == 0, f"{Op(sqe.opcode).name}: status {cqe.status:#x}"
        assert cqe.cid == sqe.cid
        assert cqe.sqid == 0
        assert cqe.sqhd == (index + 1) % L.ADMIN_QUEUE_ENTRIES
        assert cqe.phase == 1  # first lap of the admin CQ
    dw0 = {sqe.dw10: cqe.dw0 for sqe, cqe in ctrl.admin_log if sqe.opcode == Op.SET_FEATURES}
    assert dw0[L.Feature.HSM_QUEUE_COUNT] == 0x0000_0000  # one HSM queue, 0-based
    assert dw0[L.Feature.AES_QUEUE_COUNT] == 0x0001_0001  # two AES queues
    assert ctrl.admin_log[-1][1].dw0 & 1 == 1  # the GCM tail-buffer workaround (docs/device.md)
    assert ctrl.read32(L.CC) == 0x6746_0001
    assert ctrl.csts() & (L.CSTS_RDY | L.CSTS_CFS) == L.CSTS_RDY
    assert ctrl.msix.take(0), "admin completions raised no MSI-X vector 0"
    rig.assert_alive()


def test_admin_phase_wraps_after_sixteen_entries(rig):
    ctrl = rig.ctrl
    before = len(ctrl.admin_log)
    for _ in range(2 * L.ADMIN_QUEUE_ENTRIES + 3):
        ctrl.admin_command(Op.GET_FEATURES, dw10=L.Feature.FIRMWARE_CAPABILITIES)
    for index, (_, cqe) in enumerate(ctrl.admin_log):
        assert cqe.phase == 1 - (index // L.ADMIN_QUEUE_ENTRIES) % 2
        assert cqe.sqhd == (index + 1) % L.ADMIN_QUEUE_ENTRIES
    assert len(ctrl.admin_log) - before == 35


def test_identify_controller_structure(make_rig):
    rig = make_rig(probe=False, serial="AZIHSM-TEST-0042")
    rig.ctrl.enable()
    ident = rig.ctrl.identify()
    assert ident.entry_sizes_ok()
    assert (ident.cp_sqes, ident.cp_cqes, ident.fp_sqes, ident.fp_cqes) == (0x66, 0x44, 0x77, 0x66)
    assert (ident.vid, ident.ssvid) == (0x1414, 0x1414)
    assert ident.serial == "AZIHSM-TEST-0042"
    assert ident.firmware_revision
    assert ident.cp_mdts == 13
    assert ident.version == 0x0001_0400
    assert ident.controller_type == 1
    assert ident.cp_maxcmd > 0 and ident.fp_maxcmd > 0


def test_get_features_queue_counts_and_resource_count(make_rig):
    ctrl = make_rig(res_cnt=3).ctrl
    assert len([q for q in ctrl.queues if q < L.AES_FIRST_QID]) == 3
    assert len([q for q in ctrl.queues if q >= L.AES_FIRST_QID]) == 6
    hsm = ctrl.admin_command(Op.GET_FEATURES, dw10=L.Feature.HSM_QUEUE_COUNT).dw0
    aes = ctrl.admin_command(Op.GET_FEATURES, dw10=L.Feature.AES_QUEUE_COUNT).dw0
    assert (hsm, aes) == (0x0002_0002, 0x0005_0005)
    assert ctrl.admin_command(Op.GET_RESOURCE_COUNT, dw10=0).dw0 & 0xFFFF == 3


@pytest.mark.parametrize("opcode,fields,status", [
    (0x7F, {}, 0x001),  # unknown opcode
    (Op.ABORT, {"dw10": 1}, None),  # defined but never sent: anything but a crash is fine
    (Op.IDENTIFY, {"dw10": 0x55}, 0x002),  # bad CNS
    (Op.SET_FEATURES, {"dw10": 0x33}, 0x002),  # bad feature id
    (Op.GET_FEATURES, {"dw10": 0x33}, 0x002),
    (Op.IDENTIFY, {"dw10": 1, "prp1": 0xFFFF_FFF0_0000}, 0x004),  # PRP outside guest RAM
    (Op.IDENTIFY, {"dw10": 1, "prp1": 0x0100_0010}, 0x004),  # PRP with a page offset
    (Op.CREATE_CQ, {"dw10": 0 | 15 << 16, "dw11": 3}, 0x101),  # qid 0 is the admin queue
    (Op.CREATE_CQ, {"dw10": 1 | 15 << 16, "dw11": 3 | 1 << 16}, 0x101),  # qid 1 exists
    (Op.CREATE_CQ, {"dw10": 200 | 15 << 16, "dw11": 3}, 0x101),  # beyond the granted HSM queues
    (Op.CREATE_CQ, {"dw10": 0xFFFF | 15 << 16, "dw11": 3}, 0x101),
    (Op.CREATE_CQ, {"dw10": 2 | 0 << 16, "dw11": 3}, 0x102),  # size field 0
    (Op.CREATE_CQ, {"dw10": 2 | 4096 << 16, "dw11": 3}, 0x102),  # 4097 entries
    (Op.CREATE_CQ, {"dw10": 2 | 0xFFFF << 16, "dw11": 3}, 0x102),
    (Op.CREATE_CQ, {"dw10": 2 | 15 << 16, "dw11": 3 | 32 << 16}, 0x108),  # vector 32
    (Op.CREATE_CQ, {"dw10": 2 | 15 << 16, "dw11": 3, "prp1": 0xFFFF_FFF0_0000}, 0x004),
    (Op.CREATE_SQ, {"dw10": 2 | 15 << 16, "dw11": 1 | 2 << 16}, 0x100),  # CQ 2 does not exist
    (Op.CREATE_SQ, {"dw10": 1 | 15 << 16, "dw11": 1 | 1 << 16}, 0x101),  # SQ 1 exists
    (Op.DELETE_SQ, {"dw10": 7}, 0x101),  # no such SQ
    (Op.DELETE_SQ, {"dw10": 0}, 0x101),  # the admin SQ cannot be deleted
    (Op.DELETE_CQ, {"dw10": 7}, 0x101),
    (Op.DELETE_CQ, {"dw10": 1}, 0x10C),  # SQ 1 still uses CQ 1
], ids=lambda v: f"{v:#x}" if isinstance(v, int) else None)
def test_bad_admin_commands_get_their_status(make_rig, opcode, fields, status):
    rig = make_rig(res_cnt=2)
    ctrl = rig.ctrl
    ctrl.delete_queue(2)  # qid 2 is in range and free
    fields = {"prp1": ctrl.memory.alloc(4096), **fields}
    cqe = ctrl.admin_command(opcode, check=False, **fields)
    if status is not None:
        assert cqe.status == status, f"got {cqe.status:#x}"
    rig.assert_alive()
    assert ctrl.csts() & (L.CSTS_RDY | L.CSTS_CFS) == L.CSTS_RDY
    assert ctrl.hsm(bytes(8)).cqe.status == 0, "controller unusable after a rejected admin command"


def test_queue_create_delete_round_trip(rig):
    ctrl = rig.ctrl
    ctrl.delete_queue(1)
    with pytest.raises(ControllerError):
        ctrl.admin_command(Op.DELETE_SQ, dw10=1)
    ctrl.create_queue(1, 32, 1)
    result = ctrl.hsm(b"again")
    assert (result.cqe.status, result.cqe.sqid, result.cqe.sqhd) == (0, 1, 1)
