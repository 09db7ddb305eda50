"""A ``Transport`` that speaks the link protocol (docs/link-protocol.md) straight to ``pyhsm serve``.

It plays the device's part: HELLO on connect, then one REQUEST per command. Several threads may
submit at once (the way several guest processes share one device). There is no reader thread: a
waiting caller that finds nobody reading becomes the reader, hands every answer to the caller
waiting for its msg_id and stops once its own answer is in; a lone caller thus sends and receives
on its own thread, with no hand-off.

The AES fast path (``aes_gcm_*`` / ``aes_xts_*``, ``pyhsm.client.aes``) travels as AES_REQUEST /
AES_RESPONSE (link 1.1, docs/link-protocol.md "AES fast path"), as the device sends it after walking the
SGLs: the source in one piece, no tail buffer, a destination as long as the source.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from pathlib import Path

from pyhsm.client.aes import AesCompletion, AesError, AesFastPath
from pyhsm.client.transport import MAX_BUFFER, Completion
from pyhsm.protocol import link

CONNECT_TIMEOUT_S = 5.0
AES_QID = 256   # the qid AES_REQUESTs name (the first AES queue; the backend only logs it)
NO_IV = bytes(12)


class _Pending:
    """A caller waiting for its answer. ``wake`` is a one-shot signal made of a held lock (one C call to
    wait on, against a Python ``Condition`` behind ``threading.Event``): ``signal`` releases it, and a
    waiter's successful ``wait`` takes it again, consuming the signal."""

    def __init__(self) -> None:
        self._wake = threading.Lock()
        self._wake.acquire()
        self.response: link.Message | None = None

    def signal(self) -> None:
        try:
            self._wake.release()
        except RuntimeError:  # already signalled and not yet consumed
            pass

    def wait(self, timeout: float) -> None:
        self._wake.acquire(timeout=timeout)


class SocketTransport(AesFastPath):
    """Connects to the backend socket at ``path`` as device ``serial``, partition ``partition``."""

    def __init__(self, path: str | Path, serial: str = "AZIHSM-CLIENT-0001", partition: int = 0,
                 timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(CONNECT_TIMEOUT_S)
        self._sock.connect(str(path))
        self._ids = itertools.count(1)
        self._send_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._broken: str | None = None
        self._reader = link.SocketReader(self._sock)
        self._send(0, link.Hello.make(serial, partition))
        try:
            _, ack = link.read_frame(self._reader.read)
        except EOFError:
            self._sock.close()
            raise ConnectionResetError("backend closed the connection during HELLO") from None
        if not isinstance(ack, link.HelloAck) or ack.result != link.HelloAck.ACCEPTED:
            self._sock.close()
            raise ConnectionRefusedError(f"backend refused HELLO: {ack}")
        self.credits = ack.credits
        self._sock.settimeout(timeout)

    def _send(self, msg_id: int, message: link.Message) -> None:
        with self._send_lock:
            link.send_frame(self._sock, msg_id, message)

    def _read_one(self) -> None:
        """Read one frame and give it to its waiter; a broken or timed-out stream ends the link."""
        try:
            msg_id, message = link.read_frame(self._reader.read)
        except (OSError, EOFError, link.LinkError) as exc:
            self._broken = str(exc) or type(exc).__name__
            for other in list(self._pending.values()):
                other.signal()
            raise ConnectionError(f"link is down: {self._broken}") from exc
        waiter = self._pending.get(msg_id)
        if waiter is not None and isinstance(message, (link.Response, link.ResetAck, link.AesResponse)):
            waiter.response = message
            waiter.signal()

    def _hand_over(self) -> None:
        """The reader role is free: wake one caller still waiting for its answer to take it."""
        for waiter in list(self._pending.values()):
            if waiter.response is None:
                waiter.signal()
                return

    def _exchange(self, message: link.Message) -> link.Message:
        if self._broken:
            raise ConnectionError(f"link is down: {self._broken}")
        msg_id = next(self._ids)
        waiter = self._pending[msg_id] = _Pending()
        deadline = time.monotonic() + self._timeout
        try:
            self._send(msg_id, message)
            while waiter.response is None:
                if self._broken:
                    raise ConnectionError(f"link is down: {self._broken}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no answer to message {msg_id} within {self._timeout} s")
                if self._read_lock.acquire(blocking=False):
                    try:
                        while waiter.response is None:
                            self._read_one()
                    finally:
                        self._read_lock.release()
                        self._hand_over()
                else:
                    waiter.wait(remaining)
            return waiter.response
        finally:
            del self._pending[msg_id]

    def submit(self, request: bytes, flags: link.SessionFlags, session_id: int = 0, *,
               opc: int = 0, dst_len: int = MAX_BUFFER) -> Completion:
        message = link.Request(0, 0, opc, flags.to_byte(), session_id, dst_len, request)
        response = self._exchange(message)
        assert isinstance(response, link.Response)
        return Completion(response.status, link.SessionFlags.from_byte(response.session_flags),
                          response.session_id, response.short_app_id, response.payload)

    def _aes_command(self, what: str, cipher: int, op: int, session_id: int, short_app_id: int, key_id1: int,
                     key_id2: int, tag_or_tweak: bytes, iv: bytes | None, aad_len: int, aligned_aad_len: int,
                     dul: int, src: bytes) -> AesCompletion:
        """One AES_REQUEST on the first AES queue's behalf; raises ``AesError`` on a nonzero status."""
        request = link.AesRequest(link.AES_BODY_VERSION, cipher, op, dul, AES_QID, 0, session_id, short_app_id,
                                  key_id1, key_id2, aad_len, aligned_aad_len, tag_or_tweak, iv or NO_IV, 0,
                                  len(src), src)
        answer = self._exchange(request)
        assert isinstance(answer, link.AesResponse)
        if answer.status:
            raise AesError(f"backend: {what}", answer.status, answer.err)
        data = answer.data if type(answer.data) is bytes else bytes(answer.data)  # a large one: bytearray
        return data, answer.tag, answer.iv, bool(answer.fips_approved)

    def reset(self, kind: link.ResetKind) -> None:
        """Tell the backend the device was reset (what QEMU does on CC.EN, NSSR or device reset)."""
        self._exchange(link.Reset(int(kind)))

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
