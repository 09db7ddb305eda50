"""After a reset: the driver bound again and the device answers GetApiRev."""

from __future__ import annotations

from typing import Any

from pyhsm.launcher.workloads import Context, Step, Workload
from pyhsm.launcher.workloads.device import close_client, driver_bound, open_client


def get_api_rev(context: Context) -> dict[str, Any]:
    rev = open_client(context).get_api_rev()
    return {"api_rev": str(rev)}


WORKLOAD = Workload(steps=(Step("driver bound", driver_bound), Step("GetApiRev", get_api_rev)),
                    cleanup=close_client)
