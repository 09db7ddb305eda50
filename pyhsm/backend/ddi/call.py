"""What a DDI handler sees (``Call``) and the handler signature (``Handler``); the table of handlers is
``pyhsm.backend.ddi.ops.HANDLERS``."""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from pyhsm.backend.ddi.sessions import Session
from pyhsm.backend.ddi.vault import Provisioning, Vault
from pyhsm.backend.identity import DeviceIdentity
from pyhsm.protocol.ddi import physical
from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import DeviceKind


@dataclass(slots=True)
class Call:
    """One DDI command in progress. Handlers set ``dirty`` when persistent state changed and
    ``opened`` when they created or re-established a session. ``lock`` is the partition's lock,
    held while the handler runs. ``partition_vault`` is None for a command that runs outside any
    partition (the serial bus's management ops), whose handlers never touch ``vault``."""

    partition_vault: Vault | None
    identity: DeviceIdentity
    bk_boot: bytes
    header: Any
    handlers: Mapping[str, Handler]
    session: Session | None = None
    dirty: bool = False
    opened: Session | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    kind: DeviceKind = DeviceKind.Physical

    @property
    def vault(self) -> Vault:
        """The partition's state."""
        assert self.partition_vault is not None, "handler needs a partition but runs outside one"
        return self.partition_vault

    @property
    def physical(self) -> bool:
        """Whether the partition follows the Physical profile (docs/ddi.md, "Device profiles")."""
        return self.kind is DeviceKind.Physical

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

    @contextlib.contextmanager
    def unlocked(self) -> Iterator[None]:
        """Run pure computation on objects the handler already holds (e.g. a signature with a
        loaded key) without the partition lock, so that sessions' crypto can run in parallel
        (``cryptography`` releases the GIL). Nothing of the vault may be touched inside; afterwards
        the caller's session must still be the same usable session, or the command fails."""
        self.lock.release()
        try:
            yield
        finally:
            self.lock.acquire()
        if self.session is not None and self.vault.sessions.active(self.session.sess_id) is not self.session:
            raise DdiFailure(DdiStatus.InvalidArg, "the session was closed while the command ran")

    def active_session(self) -> Session:
        assert self.session is not None, "in-session handler called without a session"
        return self.session

    def run(self, op: str, data: Any) -> Any:
        """Run the handler of ``op`` on request ``data`` as the device received it, and return its
        result as the device sends it: a Physical device's field formats are converted on the way in
        and out (docs/ddi.md, "Device profiles"). Raises ``DdiFailure``."""
        if self.physical:
            data = physical.from_device(op, "request", data)
        result = self.handlers[op](self, data)
        return physical.to_device(op, "response", result) if self.physical else result


Handler = Callable[[Call, Any], Any]
