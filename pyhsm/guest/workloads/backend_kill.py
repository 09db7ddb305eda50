"""The guest's view of a backend crash: commands fail (not hang) and work again after a restart.

The host kills the backend when it sees the first step and restarts it when it sees the second.
Each step polls GetApiRev on the same descriptor; the failing call's duration is reported so the
host can check it came back within the driver's command timeout.
"""

from __future__ import annotations

import time
from typing import Any

from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.device import close_client, driver_bound, open_client

POLL_S = 0.25
PATIENCE_S = 120.0


def before_kill(context: Context) -> dict[str, Any]:
    open_client(context).get_api_rev()
    return {}


def fails_while_down(context: Context) -> dict[str, Any]:
    """Poll until a call fails; report how long that call took and what it raised."""
    deadline = time.monotonic() + PATIENCE_S
    calls = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            open_client(context).get_api_rev()
        except Exception as exc:
            return {"calls_before": calls, "failing_call_s": round(time.monotonic() - started, 3),
                    "error": f"{type(exc).__name__}: {exc}"}
        calls += 1
        time.sleep(POLL_S)
    raise TimeoutError(f"GetApiRev kept succeeding for {PATIENCE_S:.0f} s with the backend killed")


def works_after_restart(context: Context) -> dict[str, Any]:
    """Poll until a call succeeds again; report the failures seen before it."""
    deadline = time.monotonic() + PATIENCE_S
    failures: list[str] = []
    while time.monotonic() < deadline:
        try:
            open_client(context).get_api_rev()
            return {"failures_before": len(failures), "last_failure": failures[-1] if failures else ""}
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
        time.sleep(POLL_S)
    raise TimeoutError(f"GetApiRev still failing {PATIENCE_S:.0f} s later: {failures[-1]}")


WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound), Step("GetApiRev before the kill", before_kill),
           Step("GetApiRev fails while the backend is down", fails_while_down),
           Step("GetApiRev works after the restart", works_after_restart)),
    cleanup=close_client)
