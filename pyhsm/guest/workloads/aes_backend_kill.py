"""AES traffic from several guest processes while the backend is killed and restarted.

The host kills the backend (SIGKILL) when it sees "AES streams running" and starts it again when it
sees "AES calls fail while the backend is down"; the device reconnects by itself. Every worker must
see its calls fail with a defined error within the driver's timeout (no hang), and then work again
with a new session and its keys re-opened by tag: app keys survive a backend restart, sessions do not
(docs/ddi.md, "State and persistence").
"""

from __future__ import annotations

from typing import Any

from pyhsm.client import credential
from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.aes_faults import Streams, aes_queue_count, import_tagged_keys, summary
from pyhsm.guest.workloads.device import close_client, driver_bound, open_client
from pyhsm.guest.workloads.hotplug import kernel_log_clean

RUNNING_OPS = 3          # successful calls per worker before the host kills the backend
RECOVERED_OPS = 5        # successful calls per worker after the restart
PATIENCE_S = 240.0


def streams_running(context: Context) -> dict[str, Any]:
    streams = context["streams"] = Streams(context)
    streams.start()
    waited = streams.wait("ran", lambda r: r["ok"] >= RUNNING_OPS, PATIENCE_S)
    return {"workers": streams.workers, "aes_queues": aes_queue_count(), "warm_up_s": waited}


def fail_while_down(context: Context) -> dict[str, Any]:
    streams: Streams = context["streams"]
    waited = streams.wait("failed", lambda r: r["errors"] >= 1, PATIENCE_S)
    rows = streams.counters()
    return {"all_failed_within_s": waited, "max_failing_call_s": max(r["max_fail_ms"] for r in rows) / 1000}


def work_after_restart(context: Context) -> dict[str, Any]:
    streams: Streams = context.pop("streams")
    try:
        waited = streams.wait("recovered", lambda r: r["ok_since"] >= RECOVERED_OPS, PATIENCE_S)
    finally:
        reports = streams.stop()
    return summary(reports, waited)


def cleanup(context: Context) -> None:
    streams = context.pop("streams", None)
    if streams is not None:
        try:
            streams.stop()
        except Exception:  # already reported by the failing step
            pass
    close_client(context)


WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound),
           Step("establish credential", lambda c: credential.ensure_established(open_client(c))),
           Step("AES keys imported with tags", import_tagged_keys),
           Step("AES streams running", streams_running),
           Step("AES calls fail while the backend is down", fail_while_down),
           Step("AES works again after the backend restart", work_after_restart),
           Step("kernel log clean", kernel_log_clean)),
    cleanup=cleanup)
