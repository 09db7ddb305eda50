"""Only boot: the driver bound (lspci, sysfs, device node). For boot-time measurement and tests."""

from __future__ import annotations

from pyhsm.launcher.workloads import Step, Workload
from pyhsm.launcher.workloads.device import driver_bound

WORKLOAD = Workload(steps=(Step("driver bound", driver_bound),))
