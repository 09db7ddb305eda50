"""One HSM partition: turns HSM-queue commands into DDI operations on its vault.

``execute`` never raises. It checks, in order: the queue opcode (0 DDI, 1 flush), an empty request
(0x712), the envelope and header (DdiDecodeFailed with op Invalid), the opcode (UnsupportedCmd), the
session side band against the op's kind (0x710) and against the header's session id (0x711), the
request data (DdiDecodeFailed), the API revision and the session rules, then runs the handler.
State changes that must persist are written to the store *before* the response is returned.
"""

from __future__ import annotations

import logging
import pathlib
import threading

from pyhsm.backend.ddi import fastpath, migration_context
from pyhsm.backend.ddi.call import Call
from pyhsm.backend.ddi.ops import HANDLERS
from pyhsm.backend.ddi.store import KEY_LABEL, StateError, Store
from pyhsm.backend.ddi.vault import Vault
from pyhsm.backend.identity import DeviceIdentity
from pyhsm.crypto.kdf import kbkdf384
from pyhsm.protocol import link
from pyhsm.protocol.ddi.envelope import API_REV_MAX, API_REV_MIN, encode_response, open_request
from pyhsm.protocol.ddi.errors import DdiFailure, ResponseStatus
from pyhsm.protocol.ddi.mbor import MborError
from pyhsm.protocol.ddi.optable import BY_NAME, OPS
from pyhsm.protocol.ddi.schemas import OP_INVALID, OpSpec, SessionKind
from pyhsm.protocol.ddi.status import DdiStatus
from pyhsm.protocol.ddi.types import DeviceKind
from pyhsm.protocol.link import SessionFlags, SessionOp, Status

log = logging.getLogger("pyhsm.backend.ddi")

__all__ = ["Partition", "StateError"]

_REOPEN = BY_NAME["ReopenSession"].code

# Operations whose handlers spend their time in OpenSSL with the partition lock released
# (``Call.unlocked``): worth running on a worker thread so that sessions use every core.
_PARALLEL_OPS = frozenset(BY_NAME[name].code for name in ("EccSign", "EcdhKeyExchange", "RsaModExp", "MlDsaSign"))


class Partition:
    """The DDI state machine of partition ``index`` of device ``serial``, persisted in ``state_dir``."""

    def __init__(self, *, serial: str, index: int, state_dir: pathlib.Path, identity: DeviceIdentity,
                 kind: DeviceKind = DeviceKind.Physical, migration_key: bytes | None = None) -> None:
        self.serial = serial
        self.index = index
        self.kind = kind   # the device profile (docs/ddi.md, "Device profiles")
        self._identity = identity
        self._lock = threading.Lock()
        self._migration_key = migration_key   # the fleet's shared key (docs/security.md, "Migration context")
        self._bk_boot = kbkdf384(identity.at_rest_key(b"ddi-bk-boot"), b"BK_BOOT", None, 80)
        self._store = Store(state_dir, identity.at_rest_key(KEY_LABEL), f"{serial}/{index}",
                            identity.counters, f"partition-{index}")
        self.vault = Vault(identity.attestation_key())
        state = self._store.load()
        if state is not None:
            try:
                self.vault.restore(state)
            except (KeyError, ValueError, TypeError) as exc:
                raise StateError(f"{self._store.path}: state content is invalid: {exc!r}") from None
            log.info("partition %s/%d: restored %d keys", serial, index, len(self.vault.keys.persistent()))
            if self._store.needs_rewrite:
                self._store.save(self.vault.snapshot())
                log.info("partition %s/%d: state file rewritten in the current format", serial, index)

    # -- the link interface -------------------------------------------------------------------

    def execute(self, request: link.Request) -> link.Response:
        """Run one HSM-queue command; any failure becomes an error response (logged)."""
        echo = _echo(request)
        try:
            with self._lock:
                if request.opc == 1:
                    return self._flush(request)
                if request.opc != 0:
                    return self._transport_error(Status.INVALID_OPCODE, request)
                if not request.payload:
                    return self._transport_error(Status.REQUEST_REJECTED, request)
                return self._ddi(request)
        except Exception:  # a bug: answer, log, keep serving
            log.exception("partition %s/%d: internal error", self.serial, self.index)
            payload = encode_response(OP_INVALID, DdiStatus.InternalError)
            return self._respond(request, echo, payload)

    def execute_aes(self, request: link.AesRequest) -> link.AesResponse:
        """One AES fast-path command (docs/device.md, "AES path"): bulk keys of this vault."""
        return fastpath.execute(request, vault=self.vault, lock=self._lock, kind=self.kind)

    def runs_in_parallel(self, request: link.Request) -> bool:
        """Whether ``request`` is a compute-bound operation that may run beside others."""
        return _op(request) in _PARALLEL_OPS

    def reset(self, kind: link.ResetKind) -> None:
        """NSSR: docs/ddi.md, "Resets" (persisted). Controller and function reset: close every session."""
        with self._lock:
            if kind == link.ResetKind.NSSR:
                self.vault.nssr()
                self._store.save(self.vault.snapshot())
            else:
                self.vault.close_all_sessions()
            log.info("partition %s/%d: %s reset applied", self.serial, self.index, kind.name)

    # -- the migration context (docs/device.md, "Migration"; docs/link-protocol.md) -------------

    @property
    def bk_boot(self) -> bytes:
        """The boot key in effect: one taken over by migration, else the device's own."""
        return self.vault.bk_boot or self._bk_boot

    def export_migration_context(self) -> bytes:
        """The partition's sealed migration context; its export counter advances durably first.
        Raises ``ContextRefused``."""
        if self._migration_key is None:
            raise migration_context.ContextRefused(link.LmContextStatus.NO_MIGRATION_KEY,
                                                   "no migration key (docs/security.md)")
        with self._lock:
            counters = self._identity.counters
            name = migration_context.out_counter(self.index)
            counter = counters.value(name) + 1
            counters.advance(name, counter)
            record = migration_context.Record(self.vault.sessions.allocation_mask(), self.bk_boot,
                                              self.vault.sealed_bk3)
            sealed = migration_context.seal(self._migration_key, self.serial, self.index, counter, record)
        log.info("partition %s/%d: migration context %d exported (sessions 0x%02x)", self.serial, self.index,
                 counter, record.session_mask)
        return sealed

    def import_migration_context(self, context: bytes) -> None:
        """Take over a sealed migration context: authenticate it, refuse a replay (the counter of its
        source partition advances durably first), then restore it and persist. Raises ``ContextRefused``."""
        if self._migration_key is None:
            raise migration_context.ContextRefused(link.LmContextStatus.NO_MIGRATION_KEY,
                                                   "no migration key (docs/security.md)")
        opened = migration_context.open_context(self._migration_key, context)
        with self._lock:
            counters = self._identity.counters
            name = migration_context.in_counter(opened.serial, opened.partition)
            if opened.counter <= counters.value(name):
                raise migration_context.ContextRefused(
                    link.LmContextStatus.REPLAYED,
                    f"context {opened.counter} of {opened.serial}/{opened.partition} is not newer than "
                    f"{counters.value(name)}: replayed")
            counters.advance(name, opened.counter)
            record = opened.record
            self.vault.restore_migration(record.session_mask, record.bk_boot, record.sealed_bk3)
            self._store.save(self.vault.snapshot())
        log.info("partition %s/%d: migration context %d of %s/%d taken over (sessions 0x%02x)", self.serial,
                 self.index, opened.counter, opened.serial, opened.partition, record.session_mask)

    # -- internals ----------------------------------------------------------------------------

    def _flush(self, request: link.Request) -> link.Response:
        flags = SessionFlags(SessionOp.CLOSE, True, False, True)
        if self.vault.sessions.lookup(request.session_id) is None:
            log.info("flush of unknown session %d", request.session_id)
            return link.Response(Status.REQUEST_REJECTED, flags.to_byte(), 0, request.session_id)
        self._close(request.session_id)
        return link.Response(Status.SUCCESS, flags.to_byte(), 0, request.session_id)

    def _close(self, sess_id: int) -> None:
        dropped = self.vault.keys.drop_session(sess_id)
        self.vault.sessions.free(sess_id)
        log.info("session %d closed, %d session keys deleted", sess_id, dropped)

    def _transport_error(self, status: Status, request: link.Request) -> link.Response:
        log.warning("partition %s/%d: transport status 0x%03x for opc %d", self.serial, self.index,
                    status, request.opc)
        return self._respond(request, _echo(request), b"", status)

    def _respond(self, request: link.Request, flags: SessionFlags, payload: bytes,
                 status: int = Status.SUCCESS, session_id: int | None = None,
                 short_app_id: int = 0) -> link.Response:
        if request.flags.op == SessionOp.CLOSE:
            flags = SessionFlags(SessionOp.CLOSE, True, False, True)
        if len(payload) > request.dst_len:
            log.warning("response of %d bytes exceeds dst_len %d", len(payload), request.dst_len)
            payload = b""
            status = Status.INVALID_FIELD
        sid = request.session_id if session_id is None else session_id
        return link.Response(int(status), flags.to_byte(), short_app_id, sid, payload)

    def _ddi(self, request: link.Request) -> link.Response:
        side_band = request.flags
        echo = _echo(request)
        try:
            opened = open_request(request.payload)
        except MborError as exc:
            log.warning("undecodable request header: %s", exc)
            return self._respond(request, echo, encode_response(OP_INVALID, DdiStatus.DdiDecodeFailed))
        hdr = opened.header
        spec = OPS.get(hdr.op)

        def error(status: ResponseStatus) -> link.Response:
            payload = encode_response(hdr.op, status, rev=hdr.rev, sess_id=hdr.sess_id)
            return self._respond(request, echo, payload)

        if spec is None:
            log.warning("unsupported DDI op %d", hdr.op)
            return error(DdiStatus.UnsupportedCmd)
        if side_band.op != spec.kind:
            log.warning("%s: side-band session kind %d, op needs %d", spec.name, side_band.op, spec.kind)
            return self._respond(request, echo, b"", Status.SESSION_KIND_MISMATCH)
        if (request.session_id if side_band.id_valid else None) != hdr.sess_id:
            log.warning("%s: side-band session id does not match the header", spec.name)
            return self._respond(request, echo, b"", Status.SESSION_ID_MISMATCH)
        try:
            data = opened.data(spec.request)
        except MborError as exc:
            log.warning("%s: undecodable request data: %s", spec.name, exc)
            return error(DdiStatus.DdiDecodeFailed)
        call = Call(self.vault, self._identity, self.bk_boot, hdr, HANDLERS, lock=self._lock, kind=self.kind)
        try:
            self._admit(spec, call)
            result = call.run(spec.name, data)
        except DdiFailure as failure:
            log.info("%s: %s%s", spec.name, failure.status.name, f" ({failure.reason})" if failure.reason else "")
            if call.dirty:  # e.g. a counted failed login
                self._store.save(self.vault.snapshot())
            return error(failure.status)
        if call.dirty:
            self._store.save(self.vault.snapshot())
        log.debug("%s: Success", spec.name)
        if call.opened is not None:
            sess_id = call.opened.sess_id
            payload = encode_response(hdr.op, DdiStatus.Success, spec.response, result, rev=hdr.rev,
                                      sess_id=sess_id)
            if spec.kind == SessionKind.OPEN:
                flags = SessionFlags(SessionOp.OPEN, True, True)
            else:
                flags = SessionFlags(side_band.op, True)
            return self._respond(request, flags, payload, session_id=sess_id,
                                 short_app_id=call.opened.short_app_id)
        payload = encode_response(hdr.op, DdiStatus.Success, spec.response, result, rev=hdr.rev,
                                  sess_id=hdr.sess_id)
        if len(payload) > request.dst_len:
            return error(DdiStatus.InsufficientBuffer)
        return self._respond(request, echo, payload)

    def _admit(self, spec: OpSpec, call: Call) -> None:
        """Revision and session preconditions (docs/ddi.md, "Wire encoding" and "Sessions, access and the nonce")."""
        hdr = call.header
        if spec.name == "GetApiRev":
            if hdr.rev is not None:
                raise DdiFailure(DdiStatus.UnsupportedRevision, "GetApiRev must not carry a revision")
            if hdr.sess_id is not None:
                raise DdiFailure(DdiStatus.InvalidArg, "GetApiRev must not carry a session id")
            return
        if hdr.rev is None or not API_REV_MIN <= (hdr.rev.major, hdr.rev.minor) <= API_REV_MAX:
            raise DdiFailure(DdiStatus.UnsupportedRevision, "revision absent or out of range")
        if spec.kind in (SessionKind.NO_SESSION, SessionKind.OPEN):
            if hdr.sess_id is not None:
                raise DdiFailure(DdiStatus.SessionNotExpected, "op takes no session")
            return
        if hdr.sess_id is None:
            raise DdiFailure(DdiStatus.SessionExpected, "op needs a session")
        sessions = self.vault.sessions
        if spec.kind == SessionKind.CLOSE:
            session = sessions.lookup(hdr.sess_id)
            if session is None:
                raise DdiFailure(DdiStatus.InvalidArg, f"session {hdr.sess_id} is not open")
            if not session.needs_renegotiation and session.rev != call.rev:
                raise DdiFailure(DdiStatus.UnsupportedRevision, "revision differs from the session's")
            call.session = session
            return
        if spec.code == _REOPEN:
            session = sessions.lookup(hdr.sess_id)
            if session is None or not session.needs_renegotiation:
                raise DdiFailure(DdiStatus.InvalidArg, "ReopenSession needs a session awaiting renegotiation")
            call.session = session
            return
        session = sessions.active(hdr.sess_id)
        if session.rev != call.rev:
            raise DdiFailure(DdiStatus.UnsupportedRevision, "revision differs from the session's")
        call.session = session


def _op(request: link.Request) -> int | None:
    """The DDI opcode of a well-formed DDI request, else None."""
    if request.opc != 0 or not request.payload:
        return None
    try:
        return open_request(request.payload).header.op
    except MborError:
        return None


def _echo(request: link.Request) -> SessionFlags:
    """The side band a completion echoes by default: the request's session op and id_valid."""
    return SessionFlags.from_byte(request.session_flags & 0b111)
