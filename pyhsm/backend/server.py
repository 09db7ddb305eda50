"""The HSM backend process: serves azihsm devices over the link protocol (docs/link-protocol.md).

A listening thread accepts device connections on a UNIX socket from peers whose uid is allowed
(``SO_PEERCRED``: this user, root, ``--allow-uid``) and gives each connection a thread of its own. The
connection names its device in HELLO (serial and partition, validated); the backend powers the device
on once however many connections ask at the same time, then serves the connection's REQUESTs in
arrival order on the connection's thread with blocking I/O: no event loop and no hand-off between
reading a request and writing its answer, which keeps a command's round trip short, while one device's
slow command (key generation, a state save) never stalls another device, whose thread goes on.
Compute-bound requests (signing, key agreement: OpenSSL work done without the GIL and without the
partition lock) go to a worker pool so that concurrent sessions use every core; the worker that
finishes one writes its answer, possibly before earlier ones (the device matches by msg_id). One that
comes alone (nothing else of the device waiting, no worker busy) runs on the connection's thread
instead, since a hand-off costs a thread wake-up; a request that arrives meanwhile waits for it (at
most one compute-bound command: up to ~2 ms for an RSA-4096 private operation) and sends the next
ones to the workers again. Answers are written without blocking: what the socket does not take at
once waits, in order, for the connection's writer thread. Each connection holds at most ``credits``
requests read but not yet answered and written: at the limit the backend stops reading, so a peer
that does not read its answers cannot grow the backend's memory.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ctypes
import fcntl
import logging
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Generic, Hashable, Protocol, TypeVar

from pyhsm import paths
from pyhsm.backend.identity import DeviceIdentity
from pyhsm.backend.privfile import UnsafePath, private_dir
from pyhsm.protocol import link

if TYPE_CHECKING:
    from pyhsm.backend.serialbus.endpoint import Endpoint
    from pyhsm.backend.trace_recorder import Recorder

log = logging.getLogger("pyhsm.backend.server")

HELLO_TIMEOUT_S = 5.0
DEFAULT_CREDITS = 32
MAX_SERIAL = 32          # bytes of printable ASCII (docs/device.md, the serial property)
MAX_PARTITIONS = 64      # partition indices 0..63: the real device's number of functions
GIL_SWITCH_S = 0.0002
MALLOC_MMAP_MAX = 4 << 20   # the largest link frame (1 MiB and a header) and some, from the heap
MALLOC_KEEP = 64 << 20      # freed memory the heap keeps for the next command
_PEERCRED = struct.Struct("3i")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Partition(Protocol):
    def execute(self, request: link.Request) -> link.Response: ...
    def runs_in_parallel(self, request: link.Request) -> bool: ...
    def reset(self, kind: link.ResetKind) -> None: ...


PowerOn = Callable[[str], DeviceIdentity]
PartitionFactory = Callable[[str, int, DeviceIdentity], Partition]
EndpointFactory = Callable[[DeviceIdentity], "Endpoint"]


class _Refused(Exception):
    """A device the backend cannot serve, with the HELLO_ACK result that says why."""

    def __init__(self, result: int, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass
class _Served:
    """A partition, whose it is, and the connection of the device using it (None: none)."""

    partition: Partition | None
    serial: str
    index: int
    owner: socket.socket | None = None
    endpoint: Endpoint | None = None   # instead of a partition: the serial mailbox (docs/serial-mailbox.md)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, conn: socket.socket) -> bool:
        """Make ``conn`` the partition's connection, unless a live one holds it. A holder whose peer has
        already closed (its thread has not yet noticed) gives way, so a device reconnecting at once is
        not refused as busy."""
        with self.lock:
            if self.owner is not None and not _peer_closed(self.owner):
                return False
            self.owner = conn
            return True

    def release(self, conn: socket.socket) -> None:
        with self.lock:
            if self.owner is conn:
                self.owner = None


def _peer_closed(conn: socket.socket) -> bool:
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def device_name_error(serial_raw: bytes, partition: int) -> str | None:
    """Why a HELLO's device name is refused, or None: the serial is 1-32 printable ASCII characters
    (NUL-padded to 32 bytes), the partition index below ``MAX_PARTITIONS``."""
    serial = serial_raw.rstrip(b"\0")
    if not serial:
        return "empty serial"
    if len(serial) > MAX_SERIAL or not all(0x20 <= b <= 0x7E for b in serial):
        return f"serial {serial!r} is not 1-{MAX_SERIAL} printable ASCII characters"
    if not 0 <= partition < MAX_PARTITIONS:
        return f"partition index {partition} is not below {MAX_PARTITIONS}"
    return None


class _Once(Generic[K, V]):
    """Results computed once per key, however many threads ask at the same time; a failure is forgotten
    so that a later caller tries again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._futures: dict[K, concurrent.futures.Future[V]] = {}

    def get(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            existing = self._futures.get(key)
            if existing is None:
                future: concurrent.futures.Future[V] = concurrent.futures.Future()
                self._futures[key] = future
        if existing is not None:
            return existing.result()
        try:
            future.set_result(make())
        except BaseException as exc:
            with self._lock:
                del self._futures[key]
            future.set_exception(exc)
        return future.result()

    def done(self) -> list[tuple[K, V]]:
        """The (key, result) pairs computed so far."""
        with self._lock:
            futures = list(self._futures.items())
        return [(k, f.result()) for k, f in futures if f.done() and f.exception() is None]


class Backend:
    """Serves any number of devices; one partition state per (serial, partition) pair.

    ``allowed_uids``: the peer uids that may connect (default: this process's uid and root).
    """

    def __init__(self, power_on: PowerOn, make_partition: PartitionFactory, *,
                 credits: int = DEFAULT_CREDITS, recorder: Recorder | None = None,
                 allowed_uids: frozenset[int] | None = None,
                 make_endpoint: EndpointFactory | None = None) -> None:
        self._power_on = power_on
        self._make_endpoint = make_endpoint
        self._endpoints: _Once[str, _Served] = _Once()
        self._recorder = recorder
        self._workers = _Workers(os.cpu_count() or 2)
        self._make_partition = make_partition
        self._credits = credits
        self._allowed = allowed_uids if allowed_uids is not None else frozenset({os.getuid(), 0})
        self._identities: _Once[str, DeviceIdentity] = _Once()
        self._served: _Once[tuple[str, int], _Served] = _Once()
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()

    def devices(self) -> list[tuple[str, DeviceIdentity]]:
        """The powered-on devices (serial, identity)."""
        return self._identities.done()

    def partitions(self) -> list[tuple[str, int, Partition]]:
        """The served partitions (serial, index, partition)."""
        return [(serial, index, s.partition) for (serial, index), s in self._served.done() if s.partition is not None]

    def serve(self, socket_path: Path, ready: Callable[[], None] | None = None) -> None:
        """Listen on ``socket_path`` (mode 0600) until ``close``; each connection gets its own thread.

        Sets the interpreter's thread switch interval to ``GIL_SWITCH_S``: a connection whose command
        is quick then waits at most that long for a thread busy in Python code (key generation,
        state encoding) to hand over the interpreter, instead of the default 5 ms. And tunes the C
        allocator (``_keep_freed_memory``)."""
        sys.setswitchinterval(GIL_SWITCH_S)
        _keep_freed_memory()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(socket_path))
        os.chmod(socket_path, 0o600)
        listener.listen(64)
        self._listener = listener
        log.info("listening on %s", socket_path)
        if ready:
            ready()
        try:
            while not self._stopped.is_set():
                try:
                    conn, _ = listener.accept()
                except OSError:
                    if self._stopped.is_set():
                        break
                    raise
                threading.Thread(target=self._connection, args=(conn,), daemon=True,
                                 name="hsm-link").start()
        finally:
            listener.close()

    def close(self) -> None:
        """Stop accepting connections (``serve`` returns); connections in progress end with the process."""
        self._stopped.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)

    def _identity(self, serial: str) -> DeviceIdentity:
        """The device's identity, powering it on once. Raises ``_Refused``."""
        def power_on() -> DeviceIdentity:
            try:
                return self._power_on(serial)
            except Exception as exc:  # the device cannot boot: it shows CFS
                raise _Refused(link.HelloAck.ROOT_OF_TRUST_FAILURE,
                               f"device {serial}: root of trust failure: {exc}") from exc

        return self._identities.get(serial, power_on)

    def _endpoint(self, serial: str) -> _Served:
        """The device's serial-mailbox endpoint: its identity, no partition. Raises ``_Refused``."""
        def load() -> _Served:
            identity = self._identity(serial)
            if self._make_endpoint is None:
                raise _Refused(link.HelloAck.INVALID_DEVICE, f"device {serial}: no serial mailbox here")
            return _Served(None, serial, -1, endpoint=self._make_endpoint(identity))

        return self._endpoints.get(serial, load)

    def _partition(self, serial: str, index: int) -> _Served:
        """The served partition, powering its device on first. Raises ``_Refused``."""
        def load() -> _Served:
            identity = self._identity(serial)
            try:
                partition = self._make_partition(serial, index, identity)
            except Exception as exc:
                raise _Refused(link.HelloAck.STATE_UNUSABLE,
                               f"device {serial} partition {index}: state unusable: {exc}") from exc
            return _Served(partition, serial, index)

        return self._served.get((serial, index), load)

    def _connection(self, conn: socket.socket) -> None:
        served: _Served | None = None
        reader = link.SocketReader(conn)
        try:
            if self._peer_allowed(conn):
                served = self._handshake(conn, reader)
            if served and served.endpoint is not None:
                from pyhsm.backend.serialbus.link import serve_mailbox
                serve_mailbox(served.endpoint, conn, lambda: link.read_frame(reader.read))
            elif served:
                _Link(served, conn, reader, self._credits, self._workers, self._recorder).run()
        except (ConnectionError, EOFError):
            log.info("device disconnected")
        except link.LinkError as exc:
            log.warning("link protocol violation, closing connection: %s", exc)
        except socket.timeout:
            log.warning("no HELLO within %.0f s, closing connection", HELLO_TIMEOUT_S)
        except OSError as exc:
            log.info("device connection ended: %s", exc)
        finally:
            if served:
                served.release(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _peer_allowed(self, conn: socket.socket) -> bool:
        pid, uid, _ = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                       _PEERCRED.size))
        if uid in self._allowed:
            return True
        log.warning("connection from pid %d uid %d refused (allowed uids: %s; see --allow-uid)",
                    pid, uid, ", ".join(map(str, sorted(self._allowed))))
        return False

    def _handshake(self, conn: socket.socket, reader: link.SocketReader) -> _Served | None:
        conn.settimeout(HELLO_TIMEOUT_S)
        msg_id, hello = link.read_frame(reader.read)
        conn.settimeout(None)
        if not isinstance(hello, link.Hello):
            raise link.LinkError(f"expected HELLO, got {type(hello).__name__}")

        def answer(result: int) -> None:
            link.send_frame(conn, msg_id, link.HelloAck(link.VERSION, link.MINOR, self._credits, result))

        if hello.major != link.VERSION:
            log.warning("device %s speaks link %d.%d; refused", hello.serial, hello.major, hello.minor)
            answer(link.HelloAck.VERSION_UNSUPPORTED)
            return None
        invalid = device_name_error(hello.serial_raw, hello.partition)
        if invalid:
            log.warning("HELLO refused: %s", invalid)
            answer(link.HelloAck.INVALID_DEVICE)
            return None
        try:
            if hello.channel == link.Channel.SERIAL:
                served = self._endpoint(hello.serial)
            else:
                served = self._partition(hello.serial, hello.partition)
        except _Refused as refusal:
            log.error("%s", refusal.reason)
            answer(refusal.result)
            return None
        if not served.claim(conn):
            log.warning("device %s partition %d is already connected; refused",
                        hello.serial, hello.partition)
            answer(link.HelloAck.BUSY)
            return None
        log.info("device %s partition %d connected (max in flight %d)",
                 hello.serial, hello.partition, hello.max_inflight)
        answer(link.HelloAck.ACCEPTED)
        return served


_STOP = object()


class _Workers:
    """Up to ``count`` threads that run the submitted calls in order as they free up. A thread is added
    only when a call finds none free, so one session's commands keep running on one thread. A call may
    return a second step, which runs after its thread counts as free again: the answer that lets the
    device send its next command is written there, so that command finds the thread free instead of
    starting another. A C queue and a counter, nothing more: a ``concurrent.futures`` pool builds a
    future with its own condition variable per call, which costs more than a short command's own work.
    A call that raises is logged; the thread goes on."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._calls: queue.SimpleQueue[tuple[Callable[..., Callable[[], None] | None], tuple]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._free = 0   # threads minus the calls submitted and not yet done (under _lock)

    def submit(self, fn: Callable[..., Callable[[], None] | None], *args: object) -> None:
        with self._lock:
            if self._free <= 0 and self._threads < self._count:
                threading.Thread(target=self._run, daemon=True, name=f"hsm-crypto-{self._threads}").start()
                self._threads += 1
                self._free += 1
            self._free -= 1
        self._calls.put((fn, args))

    def idle(self) -> bool:
        """Whether no submitted call is waiting or running (a hint: read without the lock)."""
        return self._free == self._threads

    def _run(self) -> None:
        while True:
            fn, args = self._calls.get()
            then = None
            try:
                then = fn(*args)
            except Exception as exc:  # a bug in one call must not stop the pool
                log.error("worker call %s failed: %r", getattr(fn, "__qualname__", fn), exc)
            with self._lock:
                self._free += 1
            if then is not None:
                then()


class _Link:
    """One accepted device connection, served by the thread that calls ``run``.

    Requests run in arrival order on that thread, except compute-bound ones, which run on the worker
    pool and whose answers the link's writer thread sends when done. A CANCEL arrives after its answer
    was sent or while its work runs; the device drops that answer by msg_id, and the backend only notes
    it. With a ``recorder``, every request and reset is traced.
    """

    def __init__(self, served: _Served, conn: socket.socket, reader: link.SocketReader, credits: int,
                 workers: _Workers, recorder: Recorder | None = None) -> None:
        self._served = served
        self._recorder = recorder
        assert served.partition is not None, "a link serves a partition (serve_mailbox serves an endpoint)"
        self._partition: Partition = served.partition
        self._conn = conn
        self._reader = reader
        self._workers = workers
        self._credits: queue.SimpleQueue[None] = queue.SimpleQueue()   # one token per credit (C, no Python lock)
        for _ in range(credits):
            self._credits.put(None)
        self._order = threading.Lock()   # held while writing to the socket directly or queueing for the writer
        self._backlog = 0                # answers queued for the writer and not yet written (under _order)
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._contended = False   # a request arrived while the last parallel one ran on this thread

    def _alone(self) -> bool:
        """Whether a compute-bound request may run on the connection's own thread: nothing else of the
        device is waiting to be read, no worker is busy, and the last one that ran here saw no other
        request arrive meanwhile (after which the next one goes to the workers, and running here
        resumes once they are idle). Running here spares the worker's wake-up: tens of µs of CPU on a
        virtual machine (docs/benchmarks.md, "Fewer thread hand-offs in the backend")."""
        if self._contended:
            self._contended = not self._workers.idle()
            return False
        return self._workers.idle() and not self._waiting()

    def _waiting(self) -> bool:
        """Whether bytes of another request are buffered or ready on the socket."""
        if self._reader.buffered():
            return True
        try:
            return bool(self._conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except BlockingIOError:
            return False

    def run(self) -> None:
        writer = threading.Thread(target=self._write_backlog, daemon=True, name="hsm-link-writer")
        writer.start()
        try:
            while True:
                self._credits.get()
                msg_id, message = link.read_frame(self._reader.read)
                match message:
                    case link.Request() if self._partition.runs_in_parallel(message):
                        if self._alone():
                            self._send(msg_id, self._answer(msg_id, message, *self._execute(message)))
                            self._contended = self._waiting()
                        else:
                            self._workers.submit(self._parallel, msg_id, message)
                    case link.Request():
                        self._send(msg_id, self._answer(msg_id, message, *self._execute(message)))
                    case link.AesRequest():
                        self._send(msg_id, self._execute_aes(message))
                    case link.Reset(kind=kind):
                        self._partition.reset(_reset_kind(kind))
                        if self._recorder is not None:
                            self._recorder.reset(self._served.serial, self._served.index, kind)
                        self._send(msg_id, link.ResetAck(kind))
                    case link.LmContextGet():
                        self._send(msg_id, self._export_context(message))
                    case link.LmContextSet():
                        self._send(msg_id, self._import_context(message))
                    case link.Cancel(msg_id=cancelled):
                        log.debug("device no longer waits for message %d", cancelled)
                        self._credits.put(None)
                    case _:
                        raise link.LinkError(f"unexpected {type(message).__name__} from device")
        finally:
            self._closed = True
            self._outbox.put(_STOP)

    def _send(self, msg_id: int, answer: link.Message) -> None:
        """Hand one answer to the socket without blocking, from whichever thread holds it. What the
        socket does not take at once, and every answer behind it, waits in order for the writer
        thread, so the reader and the workers never block on a device that does not read. An answer's
        credit frees once the socket took all of it."""
        pieces = link.frame_pieces(msg_id, answer)
        with self._order:
            if self._closed:
                self._credits.put(None)
                return
            if not self._backlog:
                try:
                    pieces = link.write_some(self._conn, pieces, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    pass
                except OSError:   # the device went away: the reader sees the end of the stream
                    self._closed = True
                    pieces = []
                if not pieces:
                    self._credits.put(None)
                    return
            self._backlog += 1
            self._outbox.put(pieces)

    def _parallel(self, msg_id: int, request: link.Request) -> Callable[[], None]:
        """Run ``request`` on a worker; the answer is written in the step the pool runs after it."""
        response, latency = self._execute(request)
        answer = self._answer(msg_id, request, response, latency)
        return lambda: self._send(msg_id, answer)

    def _write_backlog(self) -> None:
        """Write, blocking, the answers the socket did not take at once, in the order they came."""
        while (pieces := self._outbox.get()) is not _STOP:
            try:
                if not self._closed:
                    for piece in pieces:
                        self._conn.sendall(piece)
            except OSError:
                self._closed = True
            finally:
                with self._order:
                    self._backlog -= 1
                self._credits.put(None)

    def _execute(self, request: link.Request) -> tuple[link.Response, float]:
        """The partition's answer and how long it took; never raises."""
        started = time.perf_counter()
        try:
            response = self._partition.execute(request)
        except Exception as exc:  # a partition bug must not take the link down
            log.error("partition failed on a request of queue %d cid %d: %r", request.qid, request.cid, exc)
            response = link.Response(link.Status.INTERNAL_ERROR, 0, 0, 0)
        return response, time.perf_counter() - started

    def _execute_aes(self, request: link.AesRequest) -> link.AesResponse:
        """An AES fast-path command (docs/link-protocol.md, "AES fast path"); never raises."""
        execute_aes = getattr(self._partition, "execute_aes", None)
        if execute_aes is None:
            return link.AesResponse.failure(link.Status.NOT_SUPPORTED)
        try:
            return execute_aes(request)
        except Exception as exc:  # a partition bug must not take the link down
            log.error("partition failed on an AES command of queue %d cid %d: %r", request.qid, request.cid, exc)
            return link.AesResponse.failure(link.Status.INTERNAL_ERROR)

    def _export_context(self, message: link.LmContextGet) -> link.LmContext:
        """The partition's sealed migration context, or why there is none (docs/link-protocol.md,
        "Migration context"); never raises."""
        status, context = self._context_call("export_migration_context", message.version)
        return link.LmContext(link.LM_BODY_VERSION, status, context or b"")

    def _import_context(self, message: link.LmContextSet) -> link.LmContextSetAck:
        status, _ = self._context_call("import_migration_context", message.version, message.context)
        return link.LmContextSetAck(link.LM_BODY_VERSION, status)

    def _context_call(self, method: str, version: int, *args: bytes) -> tuple[int, bytes | None]:
        from pyhsm.backend.ddi.migration_context import ContextRefused
        where = f"device {self._served.serial} partition {self._served.index}"
        call = getattr(self._partition, method, None)
        if version != link.LM_BODY_VERSION:
            log.warning("%s: migration context body version %d refused", where, version)
            return link.LmContextStatus.MALFORMED, None
        if call is None:
            return link.LmContextStatus.UNAVAILABLE, None
        try:
            return link.LmContextStatus.OK, call(*args)
        except ContextRefused as refusal:
            log.warning("%s: migration context refused: %s", where, refusal.reason)
            return refusal.status, None
        except Exception as exc:  # a state that cannot be saved, a bug: the guest starts over
            log.error("%s: migration context failed: %r", where, exc)
            return link.LmContextStatus.UNAVAILABLE, None

    def _answer(self, msg_id: int, request: link.Request, response: link.Response,
                latency: float) -> link.Response:
        if self._recorder is not None:
            self._recorder.command(self._served.serial, self._served.index, msg_id, request, response,
                                   latency)
        return response


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3     # mallopt parameters (glibc's malloc.h)


def _keep_freed_memory() -> None:
    """Have glibc's ``malloc`` serve blocks up to ``MALLOC_MMAP_MAX`` from the heap and keep up to
    ``MALLOC_KEEP`` of freed memory instead of giving it back to the kernel. By default a 1 MiB AES
    payload's buffers are mapped fresh for each command and unmapped after it: about 370 page faults
    and 1.5 ms per 1 MiB command, half the backend's time for it (docs/benchmarks.md, "Backend:
    fast-path GCM against cryptography"). Does nothing where the C library is not glibc."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_MAX)
    mallopt(_M_TRIM_THRESHOLD, MALLOC_KEEP)


def _reset_kind(kind: int) -> link.ResetKind:
    try:
        reset = link.ResetKind(kind)
    except ValueError:
        raise link.LinkError(f"unknown reset kind {kind}") from None
    log.info("device reset: %s", reset.name)
    return reset


def device_dir(state_dir: Path, serial: str) -> Path:
    """Where device ``serial`` keeps its state: ``STATE/devices/<serial as hex>`` (one-to-one, so no two
    serials share a directory and no serial names a path). A directory of the earlier, lossy naming
    (the serial itself, where it needed no substitution) is renamed to the new name on first use."""
    devices = state_dir / "devices"
    directory = devices / serial.encode("ascii").hex()
    legacy = devices / serial
    if (not directory.exists() and serial not in (".", "..") and "/" not in serial
            and all(c.isalnum() or c in "-_." for c in serial) and legacy.is_dir()):
        legacy.rename(directory)
        log.info("device %s: state directory %s renamed to %s", serial, legacy, directory)
    return directory


def default_backend(state_dir: Path, firmware_dir: Path, credits: int = DEFAULT_CREDITS,
                    recorder: Recorder | None = None, allowed_uids: frozenset[int] | None = None,
                    deterministic_silicon: bool = False, device_kind: str = "physical",
                    migration_key: bytes | None = None) -> Backend:
    """The production wiring: PUF/DICE root of trust and the DDI partition, whose partitions report
    ``device_kind`` ("physical" or "virtual": docs/ddi.md, "Device profiles") and seal and open
    migration contexts with ``migration_key`` (None: none; docs/security.md, "Migration context").

    The numba kernels of the root of trust and of the fast path's XTS are loaded (or compiled) here,
    so that a device's first power-on or XTS command does not pay for it.
    """
    from pyhsm.backend.ddi import xts
    from pyhsm.backend.ddi.partition import Partition as DdiPartition
    from pyhsm.backend.rot import kernels, power_on
    from pyhsm.protocol.ddi.types import DeviceKind

    kernels.warm_up()
    xts.warm_up()

    def identity(serial: str) -> DeviceIdentity:
        return power_on(device_dir(state_dir, serial), firmware_dir, serial=serial,
                        deterministic_silicon=deterministic_silicon)

    def partition(serial: str, index: int, ident: DeviceIdentity) -> Partition:
        return DdiPartition(serial=serial, index=index,
                            state_dir=device_dir(state_dir, serial) / f"partition-{index}", identity=ident,
                            kind=DeviceKind[device_kind.capitalize()], migration_key=migration_key)

    from pyhsm.backend.serialbus.endpoint import Endpoint
    from pyhsm.backend.serialbus.vdm import Management

    def endpoint(ident: DeviceIdentity) -> Endpoint:
        return Endpoint(ident, Management(ident, DeviceKind[device_kind.capitalize()]))

    return Backend(identity, partition, credits=credits, recorder=recorder, allowed_uids=allowed_uids,
                   make_endpoint=endpoint)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="run the HSM backend",
        description="Run the HSM backend: listen on a UNIX socket for azihsm devices (QEMU connects "
                    "with -chardev socket,path=SOCKET,reconnect-ms=500) and serve each device's "
                    "partition. Stops on SIGINT or SIGTERM.")
    p.add_argument("--socket", type=Path, required=True,
                   help="UNIX socket path to listen on (replaced if it exists; mode 0600; its "
                        "directory is created 0700 if missing and refused if others may write to it)")
    p.add_argument("--state", type=Path, required=True,
                   help="state directory (created 0700; refused if others may write to it): one "
                        "sub-directory per device with its non-volatile store (PUF helper data, "
                        "anti-rollback counters) and its partitions' key stores")
    p.add_argument("--firmware", type=Path, default=None,
                   help="directory of HSM firmware stage images measured at power-on "
                        "(default: build/images/firmware in the source tree)")
    p.add_argument("--credits", type=int, default=DEFAULT_CREDITS,
                   help=f"commands a device may have in flight (default {DEFAULT_CREDITS})")
    p.add_argument("--trace", type=Path, default=None, metavar="FILE",
                   help="append every command and reset as a JSON line to FILE (secrets redacted; "
                        "read it with `pyhsm trace FILE [--follow]`)")
    p.add_argument("--allow-uid", type=int, action="append", default=[], metavar="UID",
                   help="also accept connections from processes of this uid (repeatable; by default "
                        "only this user and root may connect: docs/security.md)")
    p.add_argument("--insecure-deterministic-silicon", action="store_true",
                   help="INSECURE, for reproducible experiments only: manufacture new devices with a "
                        "chip secret derived from the serial, so anyone who knows the serial can "
                        "decrypt their state (default: a random secret per chip)")
    p.add_argument("--secrets-out", type=Path, default=None, metavar="FILE",
                   help="debugging only: on SIGUSR1 and at exit, write the HSM's secrets (root "
                        "keys, attestation key, masking keys, private key material) to FILE "
                        "(mode 0600) for `pyhsm inspect --scan-secrets`")
    p.add_argument("--device-kind", choices=("physical", "virtual"), default="physical",
                   help="the DDI device profile every partition reports and follows: physical (the "
                        "V7 hardware, default) or virtual (the vendor simulator's formats and "
                        "behaviour); docs/ddi.md, \"Device profiles\"")
    p.add_argument("--migration-key", type=Path, default=None, metavar="FILE",
                   help="the fleet migration key every HSM of the fleet shares (48 bytes, raw or hex; "
                        "mode 0600), which seals the partition context a migrating guest takes to "
                        "another HSM (default: STATE/migration.key if it exists; without one, guests "
                        "migrate without their context: docs/security.md, \"Migration context\")")
    p.set_defaults(func=_serve_command)


def _migration_key(args: argparse.Namespace) -> bytes | None:
    """The fleet migration key (``--migration-key`` or STATE/migration.key), or None. Raises ``ValueError``."""
    from pyhsm.backend.ddi.migration_context import KEY_FILE, load_key
    path = args.migration_key or args.state / KEY_FILE
    if args.migration_key is None and not path.exists():
        log.info("no migration key (%s): migration contexts are refused", path)
        return None
    try:
        return load_key(path)
    except OSError as exc:
        raise ValueError(f"migration key: {exc}") from None


def _serve_command(args: argparse.Namespace) -> int:
    os.umask(0o077)
    try:
        private_dir(args.state)
        os.chmod(args.state, 0o700)
        private_dir(args.socket.parent)
        lock = _lock_state(args.state)
        migration_key = _migration_key(args)
    except (UnsafePath, OSError, ValueError) as exc:
        print(f"pyhsm serve: {exc}", file=sys.stderr)
        return 2
    recorder = None
    if args.trace:
        from pyhsm.backend.trace_recorder import Recorder
        recorder = Recorder(args.trace)
    allowed = frozenset({os.getuid(), 0, *args.allow_uid})
    backend = default_backend(args.state, args.firmware or paths.hsm_firmware(), args.credits,
                              recorder, allowed, args.insecure_deterministic_silicon, args.device_kind,
                              migration_key)

    def export_secrets() -> None:
        from pyhsm.backend import secrets_export as secrets
        secrets.write(args.secrets_out, secrets.collect(backend.devices(), backend.partitions()))

    def stop(signum: int, frame: object) -> None:
        backend.close()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    if args.secrets_out:
        signal.signal(signal.SIGUSR1, lambda signum, frame: export_secrets())
    backend.serve(args.socket, ready=lambda: print(f"ready {args.socket}", flush=True))
    if recorder:
        recorder.close()
    if args.secrets_out:
        export_secrets()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.socket)
    lock.close()
    log.info("stopped")
    return 0


def _lock_state(state: Path):
    """Hold STATE/.backend.lock for the life of the process: one backend per state directory."""
    lock = open(state / ".backend.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        owner = lock.read().strip() or "another process"
        lock.close()
        raise UnsafePath(f"state directory {state} is in use by another pyhsm serve (pid {owner})") from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock
