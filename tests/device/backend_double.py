"""An in-test HSM backend built on pyhsm.protocol.link, for link-level behaviour the real backend never shows.

It answers each REQUEST through ``handler`` (a Response, raw frame bytes to send instead, or None to
stay silent), records HELLO, REQUEST, RESET and CANCEL frames, can answer HELLO late (a slow first
power-on), and can be killed and restarted on the same socket path. The real backend is exercised
separately (test_real_backend.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path
from typing import Callable, Union

from pyhsm.protocol import link

# the vendor encoder's GetApiRev example (docs/ddi.md, "MBOR strictness"): GetApiRev as the client sends it, and the simulator's 58-byte answer.
GET_API_REV_REQUEST = bytes.fromhex("A2 18 00 A1 18 02 1A 00 00 03 EA 18 01 A0")
GET_API_REV_RESPONSE = bytes.fromhex(
    "A2 18 00 A3 18 02 1A 00 00 03 EA 18 04 1A 00 00 00 00 18 05 14 18 01 A2"
    " 18 01 A2 18 01 1A 00 00 00 01 18 02 1A 00 00 00 00"
    " 18 02 A2 18 01 1A 00 00 00 01 18 02 1A 00 00 00 00")

Answer = Union[link.Response, bytes, None]
Handler = Callable[[int, link.Request], Answer]
AesHandler = Callable[[int, link.AesRequest], Union[link.AesResponse, bytes, None]]


def no_aes(msg_id: int, request: link.AesRequest) -> link.AesResponse:
    return link.AesResponse.failure(link.Status.NOT_SUPPORTED)


def session_answer_flags(request: link.Request, session_id: int = 0) -> tuple[int, int]:
    """(flags byte, session id) a successful answer carries under the session rules of 3.7."""
    flags = request.flags
    if flags.op == link.SessionOp.OPEN:
        answer = link.SessionFlags(flags.op, id_valid=True, short_app_id_valid=True)
        return answer.to_byte(), session_id or 0x0042
    if flags.op == link.SessionOp.CLOSE:
        return link.SessionFlags(flags.op, id_valid=True, safe_to_close=True).to_byte(), request.session_id
    return link.SessionFlags(flags.op, id_valid=flags.id_valid).to_byte(), request.session_id


def echo_handler(msg_id: int, request: link.Request) -> link.Response:
    """GetApiRev gets the simulator's answer; anything else gets b"echo:" + request (capped at dst_len)."""
    flags, session = session_answer_flags(request)
    if request.payload == GET_API_REV_REQUEST:
        payload = GET_API_REV_RESPONSE
    else:
        payload = (b"echo:" + request.payload)[:request.dst_len]
    return link.Response(0, flags, 7 if flags & 8 else 0, session, payload)



async def read_frame(reader: asyncio.StreamReader) -> tuple[int, link.Message]:
    """One frame from an asyncio stream (``link.read_frame`` reads blocking streams); raises
    ``asyncio.IncompleteReadError`` at the end of the stream."""
    cls, msg_id, body_len = link.decode_header(await reader.readexactly(link.HEADER.size))
    return msg_id, cls.decode_body(await reader.readexactly(body_len))

class BackendDouble:
    """A link-protocol server on ``path``, driven from a private event-loop thread."""

    def __init__(self, path: Path, *, credits: int = 32, hello_result: int = link.HelloAck.ACCEPTED,
                 hello_delay_s: float = 0.0, hello_minor: int = link.MINOR) -> None:
        self.path = path
        self.hello_minor = hello_minor
        self.aes_handler: AesHandler = no_aes   # AES_REQUESTs (recorded in ``aes_requests``)
        self.aes_requests: list[tuple[int, link.AesRequest]] = []
        self.credits = credits
        self.hello_result = hello_result
        self.hello_delay_s = hello_delay_s  # a slow first power-on: HELLO_ACK this long after HELLO
        self.hello_ack_times: list[float] = []  # time.monotonic() of each HELLO_ACK sent
        self.handler: Handler = echo_handler
        self.hellos: list[link.Hello] = []
        self.requests: list[tuple[int, link.Request]] = []
        self.resets: list[int] = []
        self.cancels: list[int] = []
        self.max_in_flight = 0
        self._held: dict[int, link.Request] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._greeted: set[asyncio.StreamWriter] = set()  # connections past HELLO: answers go there
        self._in_flight = 0

    # ---- control from the test thread --------------------------------------------------------------
    def _call(self, coro) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> BackendDouble:
        self._call(self._start())
        return self

    def kill(self) -> None:
        """Close the listening socket and every connection at once, as a crashed backend would."""
        self._call(self._kill())

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def hold(self) -> None:
        """From now on record REQUESTs without answering them (until ``release``)."""
        self.handler = self._hold_one

    def _hold_one(self, msg_id: int, request: link.Request) -> None:
        self._held[msg_id] = request

    @property
    def held(self) -> list[int]:
        return list(self._held)

    def release(self, answer: Handler = echo_handler, order: Callable[[list[int]], list[int]] = list) -> None:
        """Answer every held REQUEST (in ``order`` of their msg_ids) and go back to answering at once."""
        self.handler = answer
        held, self._held = self._held, {}
        self._call(self._answer_all([(msg_id, held[msg_id]) for msg_id in order(list(held))]))

    def send_raw(self, frame: bytes) -> None:
        """Write raw bytes to every connected device."""
        self._call(self._send_raw(frame))

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # ---- the server ----------------------------------------------------------------------------------
    async def _start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._connection, path=str(self.path),
                                                       limit=2 * link.MAX_BODY)

    async def _kill(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._greeted.clear()
        self._in_flight = 0
        self._held.clear()

    async def _send_raw(self, frame: bytes) -> None:
        for writer in self._writers:
            writer.write(frame)

    async def _answer_all(self, pending: list[tuple[int, link.Request]]) -> None:
        for msg_id, request in pending:
            self._reply(msg_id, request)

    def _reply(self, msg_id: int, request: link.Request) -> None:
        answer = self.handler(msg_id, request)
        if answer is None:
            return
        self._in_flight -= 1
        frame = answer if isinstance(answer, bytes) else link.encode_frame(msg_id, answer)
        for writer in self._greeted:
            writer.write(frame)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            msg_id, hello = await read_frame(reader)
            assert isinstance(hello, link.Hello), hello
            self.hellos.append(hello)
            self._greeted.add(writer)
            if self.hello_delay_s:
                await asyncio.sleep(self.hello_delay_s)
            self.hello_ack_times.append(time.monotonic())
            writer.write(link.encode_frame(msg_id, link.HelloAck(1, self.hello_minor, self.credits,
                                                                   self.hello_result)))
            while True:
                msg_id, message = await read_frame(reader)
                if isinstance(message, link.Request):
                    self.requests.append((msg_id, message))
                    self._in_flight += 1
                    self.max_in_flight = max(self.max_in_flight, self._in_flight)
                    self._reply(msg_id, message)
                elif isinstance(message, link.AesRequest):
                    self.aes_requests.append((msg_id, message))
                    answer = self.aes_handler(msg_id, message)
                    if answer is not None:
                        writer.write(answer if isinstance(answer, bytes) else link.encode_frame(msg_id, answer))
                elif isinstance(message, link.Reset):
                    self.resets.append(message.kind)
                    writer.write(link.encode_frame(msg_id, link.ResetAck(message.kind)))
                elif isinstance(message, link.Cancel):
                    self.cancels.append(message.msg_id)
                    if self._held.pop(message.msg_id, None) is not None:
                        self._in_flight -= 1
        except (asyncio.IncompleteReadError, ConnectionError, link.LinkError):
            pass
        finally:
            self._writers.discard(writer)
            self._greeted.discard(writer)
            writer.close()
