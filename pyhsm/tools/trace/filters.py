"""Which trace records to show: the filters of ``pyhsm trace`` as one predicate."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smh])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


def parse_since(text: str, now: float | None = None) -> float:
    """``30s``/``5m``/``2h`` ago, a UNIX time, or an ISO 8601 time -> UNIX seconds.

    Raises ``ValueError`` naming the accepted forms."""
    ago = _AGO.match(text)
    if ago:
        return (time.time() if now is None else now) - float(ago[1]) * _UNIT_S[ago[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"--since {text!r}: use 30s, 5m, 2h, a UNIX time or an ISO 8601 time") from None


def parse_queue(text: str) -> int | str:
    """``admin`` (admin-queue commands), ``hsm`` (HSM-queue commands) or a queue id."""
    return text if text in ("admin", "hsm") else int(text, 0)


@dataclass(frozen=True)
class Filter:
    queue: int | str | None = None      # a qid, "admin" or "hsm" (the kind of command)
    ops: frozenset[str] = frozenset()   # op names, case-insensitive
    session: int | None = None
    status: int | None = None           # CQE status
    errors_only: bool = False           # nonzero CQE status or a DDI status other than Success
    since: float | None = None          # UNIX seconds

    def __call__(self, record: dict[str, Any]) -> bool:
        if self.queue is not None:
            kind = {"admin": "admin", "hsm": "command"}.get(str(self.queue))
            if (record.get("event") != kind) if kind else (record.get("queue") != self.queue):
                return False
        if self.ops and str(record.get("op", "")).lower() not in self.ops:
            return False
        if self.session is not None and record.get("session_id") != self.session:
            return False
        if self.status is not None and record.get("status") != self.status:
            return False
        if self.errors_only and not is_error(record):
            return False
        if self.since is not None and (record.get("time") or 0) < self.since:
            return False
        return True


def is_error(record: dict[str, Any]) -> bool:
    return bool(record.get("status")) or record.get("ddi_status", "Success") != "Success"
