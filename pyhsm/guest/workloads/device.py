"""What the guest sees of the HSM: bound PCI functions, device nodes, a client on one of them, and the
driver's polling parameter."""

from __future__ import annotations

import contextlib
import re
import subprocess
from pathlib import Path
from typing import Any, Iterator

from pyhsm.guest.workloads import Context, NotAvailable

DRIVER_DIR = Path("/sys/bus/pci/drivers/azihsm")
POLL_PARAMETER = Path("/sys/module/azihsm/parameters/poll_us")   # docs/guest-driver.md, "Polling"
POLL_US = 300        # the spin the workloads try: longer than a GetApiRev's answer takes under TCG
PCI_ADDRESS = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def bound_functions() -> list[str]:
    """PCI addresses the azihsm driver is bound to (empty when the driver is not loaded)."""
    if not DRIVER_DIR.is_dir():
        return []
    return sorted(p.name for p in DRIVER_DIR.iterdir() if PCI_ADDRESS.match(p.name))


def device_nodes() -> list[str]:
    return sorted(str(p) for p in Path("/dev").glob("azihsm[0-9]*"))


def lspci_functions() -> list[str]:
    """``lspci -n -d 1414:c003`` lines."""
    out = subprocess.run(["lspci", "-n", "-d", "1414:c003"], capture_output=True, text=True)
    return out.stdout.splitlines()


def driver_bound(context: Context) -> dict[str, Any]:
    """Step: exactly one HSM function on PCI, bound to azihsm, with a device node."""
    listed, bound, nodes = lspci_functions(), bound_functions(), device_nodes()
    if not Path("/sys/module/azihsm").exists():
        raise RuntimeError("azihsm module is not loaded (is azihsm.ko in the image? "
                           "see build/images/driver.status)")
    if len(listed) != 1 or len(bound) != 1 or not nodes:
        raise RuntimeError(f"lspci lists {listed}, driver bound to {bound}, nodes {nodes}")
    context["node"] = nodes[0]
    return {"pci": bound[0], "node": nodes[0]}


def open_new_client(context: Context) -> Any:
    """A new HsmClient on its own descriptor of ``context['node']``; the caller closes it."""
    try:
        from pyhsm.client import HsmClient
        from pyhsm.client.ioctl_transport import IoctlTransport
    except ImportError as exc:
        raise NotAvailable(f"client library: {exc}") from None
    return HsmClient(IoctlTransport(context["node"]))


def open_client(context: Context) -> Any:
    """The workload's HsmClient on ``context['node']`` (opened once, closed by ``close_client``)."""
    if "client" not in context:
        context["client"] = open_new_client(context)
    return context["client"]


def close_client(context: Context) -> None:
    client = context.pop("client", None)
    if client is not None:
        try:
            client.transport.close()
        except Exception as exc:  # cleanup must not hide the workload's result
            print(f"pyhsm-guest: closing the client failed: {exc}", flush=True)


@contextlib.contextmanager
def driver_polling(poll_us: int) -> Iterator[None]:
    """The driver's ``poll_us`` at ``poll_us`` inside the block, back at 0 after it."""
    POLL_PARAMETER.write_text(str(poll_us))
    try:
        yield
    finally:
        POLL_PARAMETER.write_text("0")
