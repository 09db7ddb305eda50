"""The session table (docs/ddi.md, "Sessions, access and the nonce" and "Resets"): eight virtual session ids per partition."""

from __future__ import annotations

from dataclasses import dataclass

from pyhsm.protocol.ddi.errors import DdiFailure
from pyhsm.protocol.ddi.status import DdiStatus

MAX_SESSIONS = 8


@dataclass
class Session:
    sess_id: int
    rev: tuple[int, int]
    seed: bytes = b""                 # the 48-byte session seed from OpenSession
    masking_key: bytes = b""          # 80 bytes, unmasked from bmk_session
    needs_renegotiation: bool = False
    short_app_id: int = 0


class SessionTable:
    def __init__(self) -> None:
        self._sessions: dict[int, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def ids(self) -> list[int]:
        return sorted(self._sessions)

    def allocate(self, rev: tuple[int, int]) -> Session:
        free = next((i for i in range(MAX_SESSIONS) if i not in self._sessions), None)
        if free is None:
            raise DdiFailure(DdiStatus.VaultSessionLimitReached, f"all {MAX_SESSIONS} sessions are open")
        self._sessions[free] = Session(free, rev)
        return self._sessions[free]

    def lookup(self, sess_id: int) -> Session | None:
        return self._sessions.get(sess_id)

    def active(self, sess_id: int) -> Session:
        """A usable session: InvalidArg if unknown, SessionNeedsRenegotiation after a reset."""
        session = self._sessions.get(sess_id)
        if session is None:
            raise DdiFailure(DdiStatus.InvalidArg, f"session {sess_id} is not open")
        if session.needs_renegotiation:
            raise DdiFailure(DdiStatus.SessionNeedsRenegotiation, f"session {sess_id} needs ReopenSession")
        return session

    def free(self, sess_id: int) -> None:
        self._sessions.pop(sess_id, None)

    def mark_all_for_renegotiation(self) -> None:
        for session in self._sessions.values():
            session.needs_renegotiation = True
            session.masking_key = b""
            session.seed = b""

    def clear(self) -> None:
        self._sessions.clear()

    def allocation_mask(self) -> int:
        """Bit i set: session id i is allocated (open or awaiting renegotiation)."""
        return sum(1 << sess_id for sess_id in self._sessions)

    def restore_allocation_mask(self, mask: int) -> None:
        """Replace the table with the sessions of ``mask``, every one awaiting ReopenSession (a migration
        context's restore, docs/device.md "Migration")."""
        self._sessions = {i: Session(i, (1, 0), needs_renegotiation=True)
                          for i in range(MAX_SESSIONS) if mask >> i & 1}
