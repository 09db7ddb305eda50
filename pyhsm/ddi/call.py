"""What a DDI handler sees (``Call``) and the registry that maps op names to handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pyhsm.ddi.errors import DdiFailure
from pyhsm.ddi.sessions import Session
from pyhsm.ddi.status import DdiStatus
from pyhsm.ddi.vault import Provisioning, Vault
from pyhsm.identity import DeviceIdentity


@dataclass
class Call:
    """One DDI command in progress. Handlers set ``dirty`` when persistent state changed and
    ``opened`` when they created or re-established a session."""

    vault: Vault
    identity: DeviceIdentity
    bk_boot: bytes
    header: Any
    session: Session | None = None
    dirty: bool = False
    opened: Session | None = None

    @property
    def app_id(self) -> bytes:
        if self.vault.credential is None:
            raise DdiFailure(DdiStatus.CredentialsNotEstablished, "no credential")
        return self.vault.credential[0]

    @property
    def rev(self) -> tuple[int, int]:
        return (self.header.rev.major, self.header.rev.minor)

    def provisioned(self) -> Provisioning:
        if self.vault.provisioning is None:
            raise DdiFailure(DdiStatus.PartitionNotProvisioned, "partition is not provisioned")
        return self.vault.provisioning

    def active_session(self) -> Session:
        assert self.session is not None, "in-session handler called without a session"
        return self.session


Handler = Callable[[Call, Any], Any]
HANDLERS: dict[str, Handler] = {}


def handler(name: str) -> Callable[[Handler], Handler]:
    """Register the handler of DDI op ``name`` (the schema name in ``pyhsm.ddi.schemas``)."""
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn
    return register
