"""Malformed HSM submissions: each gets its specified status, nothing reaches the backend, QEMU lives."""

from __future__ import annotations

import pytest

from pyhsm.protocol import layout as L
from pyhsm.protocol import link
from pyhsm.protocol.link import SessionFlags, SessionOp

pytestmark = pytest.mark.qemu
S = link.Status
OUTSIDE_RAM = 0xFFFF_FFF0_0000  # far above the 256 MiB of guest RAM and every MMIO window


def _bad(ctrl, cid: int) -> dict[str, tuple[dict[str, int], int]]:
    """Each case: the SQE fields that break it and the status the device must answer."""
    src, dst = ctrl.buffers(1, cid).src, ctrl.buffers(1, cid).dst
    return {
        "unknown_opc_5": ({"opc": 5}, S.INVALID_OPCODE),
        "unknown_opc_0x3ff": ({"opc": 0x3FF}, S.INVALID_OPCODE),
        "cmdset_nonzero": ({"dw0": L.HsmSqe.command_word(0, cid, cmdset=1)}, S.INVALID_FIELD),
        "psdt_nonzero": ({"dw0": L.HsmSqe.command_word(0, cid, psdt=1)}, S.INVALID_FIELD),
        "src_len_8193": ({"src_len": 8193, "src_prp2": src[1]}, S.INVALID_FIELD),
        "src_len_huge": ({"src_len": 0xFFFF_FFFF, "src_prp2": src[1]}, S.INVALID_FIELD),
        "dst_len_8193": ({"dst_len": 8193, "dst_prp2": dst[1]}, S.INVALID_FIELD),
        "src_prp1_outside_ram": ({"src_prp1": OUTSIDE_RAM}, S.DATA_TRANSFER_ERROR),
        "src_prp2_outside_ram": ({"src_len": 5000, "src_prp2": OUTSIDE_RAM}, S.DATA_TRANSFER_ERROR),
        "src_prp1_unaligned": ({"src_prp1": src[0] + 8}, S.DATA_TRANSFER_ERROR),
        "src_prp1_mmio": ({"src_prp1": 0xFED0_0000}, S.DATA_TRANSFER_ERROR),
    }


CASES = ["unknown_opc_5", "unknown_opc_0x3ff", "cmdset_nonzero", "psdt_nonzero", "src_len_8193",
         "src_len_huge", "dst_len_8193", "src_prp1_outside_ram", "src_prp2_outside_ram",
         "src_prp1_unaligned", "src_prp1_mmio"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("op", [SessionOp.NONE, SessionOp.CLOSE], ids=["no_session", "close"])
def test_bad_hsm_submission(rig, case, op, reliability):
    ctrl, backend = rig.ctrl, rig.backend
    cid = ctrl.queues[1].free_cid()
    overrides, status = _bad(ctrl, cid)[case]
    flags = SessionFlags(op, id_valid=op == SessionOp.CLOSE).to_byte()
    result = ctrl.wait_hsm(1, ctrl.submit_hsm(1, b"\xa2 request", session_flags=flags, session_id=5,
                                               cid=cid, **overrides))
    cqe = result.cqe
    assert (cqe.status, cqe.cid, cqe.sqid) == (status, cid, 1), f"status {cqe.status:#x}"
    assert cqe.byte_count == 0
    assert cqe.session_flags & 3 == op, "device errors echo the session opcode"
    if op == SessionOp.CLOSE:
        assert cqe.session_flags & 0b10100 == 0b10100, "a failed CLOSE must still free the driver's slot"
    assert backend.requests == [], "a rejected command reached the backend"
    rig.assert_alive()
    assert ctrl.csts() & L.CSTS_CFS == 0
    assert ctrl.hsm(b"fine").payload == b"echo:fine"
    reliability.record("hostile guest (device)", "malformed HSM queue entries (bad PRPs, lengths, DMA "
                       "addresses)", 1, "the precise CQE status each; nothing reached the backend")


def test_dst_prp_outside_ram_fails_the_response_write(rig):
    ctrl = rig.ctrl
    result = ctrl.hsm(b"answer me", dst_prp1=OUTSIDE_RAM)
    assert result.cqe.status == S.DATA_TRANSFER_ERROR
    rig.assert_alive()
    assert ctrl.hsm(b"fine").cqe.status == 0


def test_bad_input_is_logged(rig):
    rig.ctrl.hsm(b"x", opc=5)
    rig.ctrl.ring(L.sq_doorbell(1), 999)
    assert rig.ctrl.csts() & L.CSTS_CFS
    log = rig.machine.log()
    assert "azihsm" in log.lower(), f"no guest-error log line from the device:\n{log}"
