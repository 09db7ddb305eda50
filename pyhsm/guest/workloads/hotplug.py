"""The driver across a hot unplug and replug (QMP device_del / device_add by the host).

The host unplugs the HSM when it sees the first step and plugs it back when it sees the second.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any, Callable

from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.device import bound_functions, close_client, device_nodes, driver_bound, open_client

PATIENCE_S = 120.0
KERNEL_TROUBLE = ("BUG:", "WARNING:", "Oops", "general protection", "Call Trace")


def _wait(what: str, done: Callable[[], bool]) -> float:
    started = time.monotonic()
    while not done():
        if time.monotonic() - started > PATIENCE_S:
            raise TimeoutError(f"{what}: not within {PATIENCE_S:.0f} s")
        time.sleep(0.2)
    return round(time.monotonic() - started, 2)


def unbound(context: Context) -> dict[str, Any]:
    waited = _wait("driver unbound, node gone", lambda: not bound_functions() and not device_nodes())
    return {"waited_s": waited}


def rebound(context: Context) -> dict[str, Any]:
    waited = _wait("driver bound again", lambda: bool(bound_functions()) and bool(device_nodes()))
    return {"waited_s": waited, **driver_bound(context)}


def get_api_rev(context: Context) -> dict[str, Any]:
    open_client(context).get_api_rev()
    return {}


def kernel_log_clean(context: Context) -> dict[str, Any]:
    log = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    trouble = [line for line in log.splitlines() if any(t in line for t in KERNEL_TROUBLE)]
    if trouble:
        raise RuntimeError(f"kernel log: {trouble[:5]}")
    return {"azihsm_lines": sum("azihsm" in line for line in log.splitlines())}


WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound), Step("unbound after device_del", unbound),
           Step("bound after device_add", rebound), Step("GetApiRev on the new device", get_api_rev),
           Step("kernel log clean", kernel_log_clean)),
    cleanup=close_client)
