"""Migrate a qtest machine to another one through QMP (docs/device.md, "Migration").

The destination is a ``Machine`` started with ``incoming=True`` (``-incoming defer``); ``migrate``
points it at a URI with ``migrate-incoming``, starts the source's ``migrate`` and waits for both
ends. The test-side driver follows the guest with ``Controller.rebind``: its queues and buffers are
guest memory, which moved with the machine.
"""

from __future__ import annotations

import time
from typing import Any

from pyhsm.testing.qtest.machine import Machine

MIGRATION_TIMEOUT_S = 30.0


class MigrationFailed(RuntimeError):
    """The source reports the migration failed (its ``query-migrate`` error is in the message)."""


def query(machine: Machine) -> dict[str, Any]:
    return machine.qmp.cmd("query-migrate")


def start(source: Machine, destination: Machine | None, uri: str) -> None:
    """Point the destination (if any: a ``file:`` URI needs none) at ``uri`` and start the source."""
    if destination is not None:
        destination.qmp.cmd("migrate-incoming", uri=uri)
    source.qmp.cmd("migrate", uri=uri)


def wait_source(source: Machine, timeout_s: float = MIGRATION_TIMEOUT_S) -> dict[str, Any]:
    """Wait until the source's migration completes; raises ``MigrationFailed`` if it fails."""
    deadline = time.monotonic() + timeout_s
    while True:
        info = query(source)
        status = info.get("status")
        if status == "completed":
            return info
        if status in ("failed", "cancelled"):
            raise MigrationFailed(f"migration {status}: {info.get('error-desc', '')}")
        if time.monotonic() > deadline:
            raise MigrationFailed(f"migration still {status} after {timeout_s} s")
        time.sleep(0.02)


def wait_running(machine: Machine, timeout_s: float = MIGRATION_TIMEOUT_S) -> None:
    """Wait until ``machine`` runs (a destination starts by itself once the state is loaded)."""
    deadline = time.monotonic() + timeout_s
    while machine.qmp.cmd("query-status")["status"] != "running":
        if time.monotonic() > deadline:
            raise MigrationFailed(f"destination not running after {timeout_s} s: "
                                  f"{machine.qmp.cmd('query-status')}")
        time.sleep(0.02)


def migrate(source: Machine, destination: Machine, uri: str,
            timeout_s: float = MIGRATION_TIMEOUT_S) -> dict[str, Any]:
    """The whole migration: start it, wait for the source to complete and the destination to run."""
    start(source, destination, uri)
    info = wait_source(source, timeout_s)
    wait_running(destination, timeout_s)
    return info
