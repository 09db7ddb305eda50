"""GetApiRev and GetDeviceInfo (docs/ddi.md, "Operations")."""

from __future__ import annotations

from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.keys import TABLES
from pyhsm.protocol.ddi import messages
from pyhsm.protocol.ddi.envelope import API_REV_MAX, API_REV_MIN, rev

_API_REVS = messages.DdiGetApiRevResp(min=rev(*API_REV_MIN), max=rev(*API_REV_MAX))


def get_api_rev(call: Call, req: messages.DdiGetApiRevReq) -> messages.DdiGetApiRevResp:
    return _API_REVS


def get_device_info(call: Call, req: messages.DdiGetDeviceInfoReq) -> messages.DdiGetDeviceInfoResp:
    return messages.DdiGetDeviceInfoResp(kind=call.kind, tables=TABLES, fips_approved=False)


HANDLERS: dict[str, Handler] = {
    "GetApiRev": get_api_rev,
    "GetDeviceInfo": get_device_info,
}
