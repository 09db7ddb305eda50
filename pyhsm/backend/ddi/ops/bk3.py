"""The owner backup key BK3 and its sealed copy (docs/ddi.md, "Masking-key hierarchy")."""

from __future__ import annotations

from typing import Any

from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.provisioning import BK3_LEN, mask_bk3
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.optable import BY_NAME
from pyhsm.protocol.ddi.status import DdiStatus

MAX_SEALED_BK3 = 512


def init_bk3(call: Call, req: Any) -> Any:
    if len(req.bk3) != BK3_LEN:
        raise DdiFailure(DdiStatus.InvalidArg, f"BK3 must be {BK3_LEN} bytes")
    return BY_NAME["InitBk3"].response(masked_bk3=mask_bk3(call.bk_boot, req.bk3), vm_launch_guid=bytes(16))


def set_sealed_bk3(call: Call, req: Any) -> Any:
    if not req.sealed_bk3:
        raise DdiFailure(DdiStatus.InvalidArg, "sealed BK3 is empty")
    if len(req.sealed_bk3) > MAX_SEALED_BK3:
        raise DdiFailure(DdiStatus.SealedBk3TooLarge, f"sealed BK3 over {MAX_SEALED_BK3} bytes")
    if call.vault.sealed_bk3 is not None:
        raise DdiFailure(DdiStatus.SealedBk3AlreadySet, "sealed BK3 is already stored")
    call.vault.sealed_bk3 = bytes(req.sealed_bk3)
    call.dirty = True
    return BY_NAME["SetSealedBk3"].response()


def get_sealed_bk3(call: Call, req: Any) -> Any:
    if call.vault.sealed_bk3 is None:
        raise DdiFailure(DdiStatus.SealedBk3NotPresent, "no sealed BK3 stored")
    return BY_NAME["GetSealedBk3"].response(sealed_bk3=call.vault.sealed_bk3)


HANDLERS: dict[str, Handler] = {
    "InitBk3": init_bk3,
    "SetSealedBk3": set_sealed_bk3,
    "GetSealedBk3": get_sealed_bk3,
}
