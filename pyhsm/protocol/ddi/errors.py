"""The one exception DDI handlers raise: a failure with its DDI status and a log-safe reason."""

from __future__ import annotations

from pyhsm.protocol.ddi.status import DdiStatus


class DdiFailure(Exception):
    """Ends a DDI operation with ``status``. ``reason`` is logged; it must never contain secrets."""

    def __init__(self, status: DdiStatus, reason: str = "") -> None:
        super().__init__(f"{status.name}: {reason}" if reason else status.name)
        self.status = status
        self.reason = reason
