"""Host-to-guest command lines on the serial console (docs/migration.md): the host types one line,
``@host `` (the console relay prefix, ``pyhsm.protocol.cvm.workload.RELAY_PREFIX``) followed by one
JSON object with ``"cmd"``, and the guest agent or a waiting workload acts on it.

Commands: ``run`` (``workload``: the agent, started with ``pyhsm.wait=1``, runs it; used after a
snapshot restore), ``go`` (a workload that reported ``ready`` continues, e.g. after a live
migration, with ``note`` saying what happened). Shared by the host launcher and the guest agent.
"""

from __future__ import annotations

import json
from typing import Any

from pyhsm.protocol.cvm.workload import RELAY_PREFIX

RUN = "run"
GO = "go"


def format_command(cmd: str, **fields: Any) -> str:
    """One console line (without newline) carrying ``cmd`` and JSON-serialisable ``fields``."""
    return RELAY_PREFIX + json.dumps({"cmd": cmd, **fields}, separators=(",", ":"), sort_keys=True)


def parse_command(line: str) -> dict[str, Any] | None:
    """The command object of a host command line, or None for anything else (echo, noise)."""
    start = line.find(RELAY_PREFIX)
    if start < 0:
        return None
    try:
        command = json.loads(line[start + len(RELAY_PREFIX):])
    except ValueError:
        return None
    return command if isinstance(command, dict) and isinstance(command.get("cmd"), str) else None


def read_command(stream: Any, timeout: float, wanted: str) -> dict[str, Any]:
    """Read console lines from ``stream`` (a file with ``fileno``) until a ``wanted`` command;
    raises ``TimeoutError`` after ``timeout`` seconds without one."""
    import select
    import time
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {wanted!r} command from the host within {timeout:.0f} s")
        ready, _, _ = select.select([stream], [], [], left)
        if not ready:
            continue
        line = stream.readline()
        if not line:
            time.sleep(0.1)      # console closed for now; keep waiting until the deadline
            continue
        command = parse_command(line)
        if command is not None and command["cmd"] == wanted:
            return command
