"""GetApiRev and GetDeviceInfo (docs/ddi.md, "Operations")."""

from __future__ import annotations

from typing import Any

from pyhsm.backend.ddi.call import Call, Handler
from pyhsm.backend.ddi.keys import TABLES
from pyhsm.protocol.ddi.envelope import API_REV_MAX, API_REV_MIN, rev
from pyhsm.protocol.ddi.optable import BY_NAME


def get_api_rev(call: Call, req: Any) -> Any:
    return BY_NAME["GetApiRev"].response(min=rev(*API_REV_MIN), max=rev(*API_REV_MAX))


def get_device_info(call: Call, req: Any) -> Any:
    return BY_NAME["GetDeviceInfo"].response(kind=call.kind, tables=TABLES, fips_approved=False)


HANDLERS: dict[str, Handler] = {
    "GetApiRev": get_api_rev,
    "GetDeviceInfo": get_device_info,
}
