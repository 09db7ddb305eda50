"""The Transport protocol (pyhsm/client/transport.py) over the qtest-driven device.

Each ``submit`` is one HSM SQE on one queue, waited for synchronously. Like the guest driver's file
descriptor, the transport remembers the session a successful OPEN returned and flushes it
(opc 1, CLOSE | in_session) on ``close``.
"""

from __future__ import annotations

from pyhsm.client.transport import MAX_BUFFER, Completion
from pyhsm.protocol.layout import HSM_FIRST_QID
from pyhsm.protocol.link import SessionFlags, SessionOp
from pyhsm.testing.qtest.controller import Controller, ControllerError

FLUSH_SESSION_OPC = 1


class QtestTransport:
    """HSM commands through a probed ``Controller`` on HSM queue ``qid``."""

    def __init__(self, controller: Controller, qid: int = HSM_FIRST_QID) -> None:
        self._controller = controller
        self._qid = qid
        self._open_session: int | None = None

    def submit(self, request: bytes, flags: SessionFlags, session_id: int = 0, *,
               opc: int = 0, dst_len: int = MAX_BUFFER) -> Completion:
        """Send one command and wait for its completion. Raises ``OSError`` if the path is broken."""
        try:
            result = self._controller.hsm(request, self._qid, session_flags=flags.to_byte(),
                                          session_id=session_id, opc=opc, dst_len=dst_len)
        except ControllerError as exc:
            raise OSError(f"azihsm device (qtest): {exc}") from exc
        completion = Completion(result.cqe.status, SessionFlags.from_byte(result.cqe.session_flags),
                                result.cqe.session_id, result.cqe.short_app_id, result.payload)
        self._track_session(flags, completion)
        return completion

    def _track_session(self, sent: SessionFlags, done: Completion) -> None:
        if done.status or done.flags.op != sent.op:
            return
        if sent.op == SessionOp.OPEN and done.flags.id_valid:
            self._open_session = done.session_id
        elif sent.op == SessionOp.CLOSE and done.flags.safe_to_close:
            self._open_session = None

    def close(self) -> None:
        """Flush the session still open through this transport, as the driver does on fd close."""
        if self._open_session is None:
            return
        flags = SessionFlags(SessionOp.CLOSE, id_valid=True)
        session, self._open_session = self._open_session, None
        self.submit(b"", flags, session, opc=FLUSH_SESSION_OPC, dst_len=0)
