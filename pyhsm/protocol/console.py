"""The machine-readable lines the guest writes on its serial console, and their parser.

A report line is ``@pyhsm `` followed by one JSON object with at least ``"event"``. Events:
``boot`` (guest agent started: ``boot`` count, ``uptime_s``), ``step`` (``name``, ``result`` one of
``ok``/``failed``/``unavailable``/``not run``, ``ms``, ``detail`` object, ``error`` text),
``cmd`` (the extra command's ``rc``), ``done`` (``ok``: the workload's verdict), ``poweroff``
(written by the guest's init just before it powers off).
Every other console line is plain log text.
"""

from __future__ import annotations

import json
from typing import Any

PREFIX = "@pyhsm "

OK = "ok"
FAILED = "failed"
UNAVAILABLE = "unavailable"
NOT_RUN = "not run"


def format_event(event: str, **fields: Any) -> str:
    """One report line (without newline) for ``event`` with JSON-serialisable ``fields``."""
    return PREFIX + json.dumps({"event": event, **fields}, separators=(",", ":"), sort_keys=True)


def parse_line(line: str) -> dict[str, Any] | None:
    """The event object of a report line, or None for log text or a garbled report line."""
    start = line.find(PREFIX)
    if start < 0:
        return None
    try:
        event = json.loads(line[start + len(PREFIX):])
    except ValueError:
        return None
    return event if isinstance(event, dict) and isinstance(event.get("event"), str) else None
