"""The owner backup key BK3 and its sealed copy (docs/ddi.md, "Masking-key hierarchy")."""

from __future__ import annotations

from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.provisioning import BK3_LEN, mask_bk3
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus

MAX_SEALED_BK3 = 512


def init_bk3(call: Call, req: messages.DdiInitBk3Req) -> messages.DdiInitBk3Resp:
    if len(req.bk3) != BK3_LEN:
        raise DdiFailure(DdiStatus.InvalidArg, f"BK3 must be {BK3_LEN} bytes")
    return messages.DdiInitBk3Resp(masked_bk3=mask_bk3(call.bk_boot, req.bk3), vm_launch_guid=bytes(16))


def set_sealed_bk3(call: Call, req: messages.DdiSetSealedBk3Req) -> messages.DdiSetSealedBk3Resp:
    if not req.sealed_bk3:
        raise DdiFailure(DdiStatus.InvalidArg, "sealed BK3 is empty")
    if len(req.sealed_bk3) > MAX_SEALED_BK3:
        raise DdiFailure(DdiStatus.SealedBk3TooLarge, f"sealed BK3 over {MAX_SEALED_BK3} bytes")
    if call.vault.sealed_bk3 is not None:
        raise DdiFailure(DdiStatus.SealedBk3AlreadySet, "sealed BK3 is already stored")
    call.vault.sealed_bk3 = bytes(req.sealed_bk3)
    call.dirty = True
    return messages.DdiSetSealedBk3Resp()


def get_sealed_bk3(call: Call, req: messages.DdiGetSealedBk3Req) -> messages.DdiGetSealedBk3Resp:
    if call.vault.sealed_bk3 is None:
        raise DdiFailure(DdiStatus.SealedBk3NotPresent, "no sealed BK3 stored")
    return messages.DdiGetSealedBk3Resp(sealed_bk3=call.vault.sealed_bk3)


HANDLERS: dict[str, Handler] = {
    "InitBk3": init_bk3,
    "SetSealedBk3": set_sealed_bk3,
    "GetSealedBk3": get_sealed_bk3,
}
