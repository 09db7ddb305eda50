"""The one exception DDI handlers raise: a failure with its DDI or vendor status and a log-safe reason."""

from __future__ import annotations

from pyhsm.protocol.ddi.schemas_vendor import VendorStatus
from pyhsm.protocol.ddi.status import DdiStatus

ResponseStatus = DdiStatus | VendorStatus   # what a response header's status can be


class DdiFailure(Exception):
    """Ends a DDI operation with ``status``. ``reason`` is logged; it must never contain secrets."""

    def __init__(self, status: ResponseStatus, reason: str = "") -> None:
        super().__init__(f"{status.name}: {reason}" if reason else status.name)
        self.status = status
        self.reason = reason
