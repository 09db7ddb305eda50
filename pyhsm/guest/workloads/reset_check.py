"""After a reset: the driver bound again and the device answers GetApiRev."""

from __future__ import annotations

from pyhsm.guest.workloads import Step, Workload
from pyhsm.guest.workloads.default import get_api_rev
from pyhsm.guest.workloads.device import close_client, driver_bound

WORKLOAD = Workload(steps=(Step("driver bound", driver_bound), Step("GetApiRev", get_api_rev)),
                    cleanup=close_client)
