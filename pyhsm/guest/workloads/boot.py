"""Only boot: the driver bound (lspci, sysfs, device node). For boot-time measurement and tests."""

from __future__ import annotations

from pyhsm.guest.workloads import Step, Workload
from pyhsm.guest.workloads.device import driver_bound

WORKLOAD = Workload(steps=(Step("driver bound", driver_bound),))
