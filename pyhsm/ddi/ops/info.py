"""GetApiRev and GetDeviceInfo (ddi.md 2.3)."""

from __future__ import annotations

from typing import Any

from pyhsm.ddi.call import Call, handler
from pyhsm.ddi.envelope import rev
from pyhsm.ddi.keys import TABLES
from pyhsm.ddi.schemas import BY_NAME

API_REV_MIN = (1, 0)
API_REV_MAX = (1, 0)


@handler("GetApiRev")
def get_api_rev(call: Call, req: Any) -> Any:
    return BY_NAME["GetApiRev"].response(min=rev(*API_REV_MIN), max=rev(*API_REV_MAX))


@handler("GetDeviceInfo")
def get_device_info(call: Call, req: Any) -> Any:
    return BY_NAME["GetDeviceInfo"].response(kind=call.kind, tables=TABLES, fips_approved=False)
