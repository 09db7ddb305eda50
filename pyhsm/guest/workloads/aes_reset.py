"""AES traffic from several guest processes through resets the guest asks for with the driver's reset
ioctl (``reset_device``): a level-2 abort by CC.EN, then one by NSSR. The guest stays up.

Every worker sees its calls fail with a defined error (commands in flight: EAGAIN / 0x04000002; the
descriptor's session is forgotten by the driver: EINVAL / 109) and recovers with a new descriptor,
session and keys re-opened by tag. A controller reset closes every session and keeps app keys; an NSSR
also deletes the credential and every key (docs/ddi.md, "Resets"), so after it the agent establishes
the credential again and re-imports the keys under the same tags, while the workers keep retrying.
"""

from __future__ import annotations

import time
from typing import Any

from pyhsm.client import credential
from pyhsm.client.ioctl_transport import RESET_CC_EN, RESET_NSSR, reset_device
from pyhsm.guest.workloads import Context, Step, Workload
from pyhsm.guest.workloads.aes_backend_kill import PATIENCE_S, RECOVERED_OPS, RUNNING_OPS, cleanup
from pyhsm.guest.workloads.aes_faults import Streams, aes_queue_count, import_tagged_keys, summary
from pyhsm.guest.workloads.device import close_client, driver_bound, open_client
from pyhsm.guest.workloads.hotplug import kernel_log_clean

RETRY_S = 0.5


def _retry(what: str, action):
    """``action()`` until it works (the workers race the agent for the nonce and the sessions)."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        try:
            return action()
        except Exception as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} still failing: {exc}") from exc
            time.sleep(RETRY_S)


def _through_reset(context: Context, abort_type: int) -> dict[str, Any]:
    streams = context["streams"] = Streams(context)
    streams.start()
    streams.wait("ran", lambda r: r["ok"] >= RUNNING_OPS, PATIENCE_S)
    close_client(context)   # the agent's own descriptor: its session is forgotten by the reset
    started = time.monotonic()
    reset_device(context["node"], abort_type)
    reset_s = round(time.monotonic() - started, 2)
    restored = {}
    if abort_type == RESET_NSSR:   # credential and keys are gone: put them back as the DDI says
        restored["credential"] = _retry("EstablishCredential",
                                        lambda: credential.ensure_established(open_client(context)))
        restored["keys"] = _retry("key import", lambda: import_tagged_keys(context))
    try:
        waited = streams.wait("recovered", lambda r: r["errors"] >= 1 and r["ok_since"] >= RECOVERED_OPS,
                              PATIENCE_S)
    finally:
        context.pop("streams")
        reports = streams.stop()
    return {"reset_ioctl_s": reset_s, "aes_queues": aes_queue_count(), **restored, **summary(reports, waited)}


WORKLOAD = Workload(
    steps=(Step("driver bound", driver_bound),
           Step("establish credential", lambda c: credential.ensure_established(open_client(c))),
           Step("AES keys imported with tags", import_tagged_keys),
           Step("AES traffic through a controller reset", lambda c: _through_reset(c, RESET_CC_EN)),
           Step("AES traffic through an NSSR", lambda c: _through_reset(c, RESET_NSSR)),
           Step("kernel log clean", kernel_log_clean)),
    cleanup=cleanup)
