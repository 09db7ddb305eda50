"""The guest agent: started by /sbin/pyhsm-init as ``python3 -m pyhsm.guest.agent``.

Reads ``pyhsm.workload=NAME`` (default ``default``), ``pyhsm.after-reset=NAME`` (the workload of
every later boot of the same VM, e.g. after a QMP system_reset; default: the same) and
``pyhsm.cmd=BASE64`` from the kernel command line, reports ``boot``, loads azihsm, runs
``pyhsm.guest.workloads.NAME`` and then the extra shell command, and reports ``done``.

With ``pyhsm.wait=1`` (docs/migration.md, "CI snapshots") the agent loads azihsm, reports ``ready``
without touching the device, and waits for a host command line on the console
(``pyhsm.client.host_commands``: ``run`` with ``workload``); it reports ``start`` and runs that
workload instead of the command line's. A snapshot taken while it waits restores to this point.
Runs inside the VM only.
"""

from __future__ import annotations

import base64
import importlib
import subprocess
import sys
import time
from pathlib import Path

from pyhsm.client import host_commands
from pyhsm.guest.workloads import Workload
from pyhsm.protocol.console import format_event

BOOT_COUNT = Path("/var/lib/pyhsm/boots")
WAIT_TIMEOUT_S = 24 * 3600.0     # a waiting agent (pyhsm.wait=1) waits this long for its command


def emit(event: str, **fields: object) -> None:
    """Write one report line to the console."""
    print(format_event(event, **fields), flush=True)


def kernel_params(cmdline: str) -> dict[str, str]:
    """``pyhsm.*`` parameters of a kernel command line, without the prefix."""
    params = {}
    for word in cmdline.split():
        key, sep, value = word.partition("=")
        if sep and key.startswith("pyhsm."):
            params[key.removeprefix("pyhsm.")] = value
    return params


def _count_boot() -> int:
    count = int(BOOT_COUNT.read_text()) + 1 if BOOT_COUNT.exists() else 1
    BOOT_COUNT.write_text(f"{count}\n")
    return count


def main() -> int:
    params = kernel_params(Path("/proc/cmdline").read_text())
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    boot = _count_boot()
    emit("boot", boot=boot, uptime_s=uptime)
    name = params.get("workload", "default")
    if boot > 1:
        name = params.get("after-reset", name)
    modprobe = subprocess.run(["modprobe", "azihsm"], capture_output=True, text=True)
    if modprobe.returncode != 0:
        print(f"pyhsm-guest: modprobe azihsm failed: {modprobe.stderr.strip()}", flush=True)
    if boot == 1 and params.get("wait") == "1":
        emit("ready", uptime_s=float(Path("/proc/uptime").read_text().split()[0]))
        try:
            command = host_commands.read_command(sys.stdin, WAIT_TIMEOUT_S, host_commands.RUN)
        except TimeoutError as exc:
            emit("done", ok=False, error=str(exc))
            return 1
        name = str(command.get("workload", name))
        emit("start", workload=name, uptime_s=float(Path("/proc/uptime").read_text().split()[0]))
    try:
        workload: Workload = importlib.import_module(f"pyhsm.guest.workloads.{name}").WORKLOAD
    except ImportError as exc:
        emit("done", ok=False, error=f"unknown workload {name!r}: {exc}")
        return 1
    ok = workload.run(emit)
    if "cmd" in params:
        command = base64.b64decode(params["cmd"]).decode()
        started = time.monotonic()
        rc = subprocess.run(["sh", "-c", command]).returncode
        emit("cmd", rc=rc, ms=round((time.monotonic() - started) * 1000, 1))
    emit("done", ok=ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
