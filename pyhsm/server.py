"""The HSM backend process: serves azihsm devices over the link protocol (docs/link-protocol.md).

One asyncio loop accepts device connections on a UNIX socket, from peers whose uid is allowed
(``SO_PEERCRED``: this user, root, ``--allow-uid``). Each connection names its device in HELLO (serial and
partition, validated); the backend powers the device on once however many connections ask at the same
time (its root of trust re-derives the identity on a worker thread), then serves the connection's
REQUESTs. Where a request runs is the partition's call: cheap read-only operations on the loop, in
arrival order (a hand-off to a thread costs more than they do); compute-bound ones (signing, key
agreement: OpenSSL without the GIL and without the partition lock) on the worker pool, answered when
done and possibly before earlier ones (the device matches by msg_id); everything else (key generation,
state saves) on a worker thread in arrival order, so no device's slow command stalls another's.
Each link holds at most ``credits`` requests read but not yet answered and flushed: at the limit the
backend stops reading, so a peer that does not read its answers cannot grow the backend's memory.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
import os
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable, Protocol, TypeVar

from pyhsm import link
from pyhsm.identity import DeviceIdentity
from pyhsm.privfile import UnsafePath, private_dir

if TYPE_CHECKING:
    from pyhsm.trace.record import Recorder

log = logging.getLogger("pyhsm.server")

HELLO_TIMEOUT_S = 5.0
DEFAULT_CREDITS = 32
MAX_SERIAL = 32          # bytes of printable ASCII (docs/device.md, the serial property)
MAX_PARTITIONS = 64      # partition indices 0..63: the real device's number of functions
_PEERCRED = struct.Struct("3i")
T = TypeVar("T")


class Partition(Protocol):
    def execute(self, request: link.Request) -> link.Response: ...
    def runs_in_parallel(self, request: link.Request) -> bool: ...
    def runs_inline(self, request: link.Request) -> bool: ...
    def reset(self, kind: link.ResetKind) -> None: ...


PowerOn = Callable[[str], DeviceIdentity]
PartitionFactory = Callable[[str, int, DeviceIdentity], Partition]


class _Refused(Exception):
    """A device the backend cannot serve, with the HELLO_ACK result that says why."""

    def __init__(self, result: int, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass
class _Served:
    """A partition, whose it is, and whether a device is connected to it."""

    partition: Partition
    serial: str
    index: int
    connected: bool = False


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


class Backend:
    """Serves any number of devices; one partition state per (serial, partition) pair.

    ``allowed_uids``: the peer uids that may connect (default: this process's uid and root).
    """

    def __init__(self, power_on: PowerOn, make_partition: PartitionFactory, *,
                 credits: int = DEFAULT_CREDITS, recorder: Recorder | None = None,
                 allowed_uids: frozenset[int] | None = None) -> None:
        self._power_on = power_on
        self._recorder = recorder
        self._workers = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(4, os.cpu_count() or 2), thread_name_prefix="hsm-worker")
        self._make_partition = make_partition
        self._credits = credits
        self._allowed = allowed_uids if allowed_uids is not None else frozenset({os.getuid(), 0})
        self._identities: dict[str, asyncio.Future[DeviceIdentity]] = {}
        self._served: dict[tuple[str, int], asyncio.Future[_Served]] = {}

    def devices(self) -> list[tuple[str, DeviceIdentity]]:
        """The powered-on devices (serial, identity)."""
        return [(serial, f.result()) for serial, f in _done(self._identities)]

    def partitions(self) -> list[tuple[str, int, Partition]]:
        """The served partitions (serial, index, partition)."""
        return [(serial, index, f.result().partition) for (serial, index), f in _done(self._served)]

    async def serve(self, socket_path: Path, ready: Callable[[], None] | None = None) -> None:
        """Listen on ``socket_path`` until cancelled."""
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        server = await asyncio.start_unix_server(self._connection, path=str(socket_path),
                                                 limit=2 * link.MAX_BODY)
        os.chmod(socket_path, 0o600)
        log.info("listening on %s", socket_path)
        if ready:
            ready()
        async with server:
            await server.serve_forever()

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._workers, fn, *args)

    async def _partition(self, serial: str, index: int) -> _Served:
        """The served partition, powering its device on first; concurrent callers share one power-on
        and one partition load. Raises ``_Refused`` (and a later HELLO tries again)."""
        async def power_on() -> DeviceIdentity:
            try:
                return await self._run(self._power_on, serial)
            except Exception as exc:  # the device cannot boot: it shows CFS
                raise _Refused(link.HelloAck.ROOT_OF_TRUST_FAILURE,
                               f"device {serial}: root of trust failure: {exc}") from exc

        async def load() -> _Served:
            identity = await _once(self._identities, serial, power_on)
            try:
                partition = await self._run(self._make_partition, serial, index, identity)
            except Exception as exc:
                raise _Refused(link.HelloAck.STATE_UNUSABLE,
                               f"device {serial} partition {index}: state unusable: {exc}") from exc
            return _Served(partition, serial, index)

        return await _once(self._served, (serial, index), load)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served: _Served | None = None
        try:
            if self._peer_allowed(writer):
                served = await self._handshake(reader, writer)
            if served:
                await _Link(served, reader, writer, self._credits, self._run, self._recorder).run()
        except (asyncio.IncompleteReadError, ConnectionError):
            log.info("device disconnected")
        except link.LinkError as exc:
            log.warning("link protocol violation, closing connection: %s", exc)
        except asyncio.TimeoutError:
            log.warning("no HELLO within %.0f s, closing connection", HELLO_TIMEOUT_S)
        finally:
            if served:
                served.connected = False
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _peer_allowed(self, writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        pid, uid, _ = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                       _PEERCRED.size))
        if uid in self._allowed:
            return True
        log.warning("connection from pid %d uid %d refused (allowed uids: %s; see --allow-uid)",
                    pid, uid, ", ".join(map(str, sorted(self._allowed))))
        return False

    async def _handshake(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> _Served | None:
        msg_id, hello = await asyncio.wait_for(link.read_frame(reader), HELLO_TIMEOUT_S)
        if not isinstance(hello, link.Hello):
            raise link.LinkError(f"expected HELLO, got {type(hello).__name__}")

        def answer(result: int) -> None:
            ack = link.HelloAck(link.VERSION, link.MINOR, self._credits, result)
            writer.write(link.encode_frame(msg_id, ack))

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
            served = await self._partition(hello.serial, hello.partition)
        except _Refused as refusal:
            log.error("%s", refusal.reason)
            answer(refusal.result)
            return None
        if served.connected:
            log.warning("device %s partition %d is already connected; refused",
                        hello.serial, hello.partition)
            answer(link.HelloAck.BUSY)
            return None
        served.connected = True
        log.info("device %s partition %d connected (max in flight %d)",
                 hello.serial, hello.partition, hello.max_inflight)
        answer(link.HelloAck.ACCEPTED)
        return served


async def _once(table: dict, key: object, make: Callable[[], Awaitable[T]]) -> T:
    """``make()``'s result, computed once per key however many callers wait for it at the same time;
    a failure is forgotten so that a later caller tries again."""
    future = table.get(key)
    if future is None:
        future = table[key] = asyncio.ensure_future(make())
    try:
        return await asyncio.shield(future)
    except Exception:
        if table.get(key) is future:
            del table[key]
        raise


def _done(table: dict[object, asyncio.Future[T]]) -> list[tuple[object, asyncio.Future[T]]]:
    return [(k, f) for k, f in list(table.items()) if f.done() and not f.cancelled() and f.exception() is None]


class _Link:
    """One accepted device connection.

    At most ``credits`` requests are in flight (read, not yet answered and flushed); at the limit the
    link stops reading. Inline requests run on the loop, serial ones on a worker in arrival order,
    parallel ones on workers concurrently. A CANCEL arrives after its answer was sent or while its work
    runs; the device drops that answer by msg_id, and the backend only notes it. With a ``recorder``,
    every request and reset is traced (always from the loop thread).
    """

    def __init__(self, served: _Served, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 credits: int, run: Callable[..., Awaitable], recorder: Recorder | None = None) -> None:
        self._served = served
        self._recorder = recorder
        self._partition = served.partition
        self._reader = reader
        self._writer = writer
        self._run = run
        self._slots = asyncio.Semaphore(credits)
        self._running: set[asyncio.Task] = set()

    async def run(self) -> None:
        try:
            while True:
                await self._slots.acquire()
                msg_id, message = await link.read_frame(self._reader)
                match message:
                    case link.Request() if self._partition.runs_in_parallel(message):
                        task = asyncio.create_task(self._parallel(msg_id, message))
                        self._running.add(task)
                        task.add_done_callback(self._running.discard)
                    case link.Request() if self._partition.runs_inline(message):
                        await self._send(msg_id, self._answer(msg_id, message, *self._execute(message)))
                    case link.Request():
                        answer = self._answer(msg_id, message, *await self._run(self._execute, message))
                        await self._send(msg_id, answer)
                    case link.Reset(kind=kind):
                        await self._run(self._partition.reset, _reset_kind(kind))
                        if self._recorder is not None:
                            self._recorder.reset(self._served.serial, self._served.index, kind)
                        await self._send(msg_id, link.ResetAck(kind))
                    case link.Cancel(msg_id=cancelled):
                        log.debug("device no longer waits for message %d", cancelled)
                        self._slots.release()
                    case _:
                        raise link.LinkError(f"unexpected {type(message).__name__} from device")
        finally:
            for task in self._running:
                task.cancel()

    async def _send(self, msg_id: int, answer: link.Message) -> None:
        """Write one answer and wait until it is flushed; then the request's credit is free again."""
        try:
            if not self._writer.is_closing():
                self._writer.write(link.encode_frame(msg_id, answer))
                await self._writer.drain()
        finally:
            self._slots.release()

    async def _parallel(self, msg_id: int, request: link.Request) -> None:
        response, latency = await self._run(self._execute, request)
        await self._send(msg_id, self._answer(msg_id, request, response, latency))

    def _execute(self, request: link.Request) -> tuple[link.Response, float]:
        """The partition's answer and how long it took; never raises."""
        started = time.perf_counter()
        try:
            response = self._partition.execute(request)
        except Exception as exc:  # a partition bug must not take the link down
            log.error("partition failed on a request of queue %d cid %d: %r", request.qid, request.cid, exc)
            response = link.Response(link.Status.INTERNAL_ERROR, 0, 0, 0)
        return response, time.perf_counter() - started

    def _answer(self, msg_id: int, request: link.Request, response: link.Response,
                latency: float) -> link.Response:
        if self._recorder is not None:
            self._recorder.command(self._served.serial, self._served.index, msg_id, request, response,
                                   latency)
        return response


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
                    deterministic_silicon: bool = False) -> Backend:
    """The production wiring: PUF/DICE root of trust and the DDI partition.

    The root of trust's numba kernels are loaded (or compiled) here, so that a device's first
    power-on does not pay for it.
    """
    from pyhsm.ddi.partition import Partition as DdiPartition
    from pyhsm.rot import kernels, power_on

    kernels.warm_up()

    def identity(serial: str) -> DeviceIdentity:
        return power_on(device_dir(state_dir, serial), firmware_dir, serial=serial,
                        deterministic_silicon=deterministic_silicon)

    def partition(serial: str, index: int, ident: DeviceIdentity) -> Partition:
        return DdiPartition(serial=serial, index=index,
                            state_dir=device_dir(state_dir, serial) / f"partition-{index}", identity=ident)

    return Backend(identity, partition, credits=credits, recorder=recorder, allowed_uids=allowed_uids)


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
    p.set_defaults(func=_serve_command)


def default_firmware_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "build" / "images" / "firmware"


def _serve_command(args: argparse.Namespace) -> int:
    os.umask(0o077)
    try:
        private_dir(args.state)
        os.chmod(args.state, 0o700)
        private_dir(args.socket.parent)
        lock = _lock_state(args.state)
    except (UnsafePath, OSError) as exc:
        print(f"pyhsm serve: {exc}", file=sys.stderr)
        return 2
    recorder = None
    if args.trace:
        from pyhsm.trace.record import Recorder
        recorder = Recorder(args.trace)
    allowed = frozenset({os.getuid(), 0, *args.allow_uid})
    backend = default_backend(args.state, args.firmware or default_firmware_dir(), args.credits,
                              recorder, allowed, args.insecure_deterministic_silicon)

    def export_secrets() -> None:
        from pyhsm.inspect import secrets
        secrets.write(args.secrets_out, secrets.collect(backend.devices(), backend.partitions()))

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        if args.secrets_out:
            loop.add_signal_handler(signal.SIGUSR1, export_secrets)
        await backend.serve(args.socket, ready=lambda: print(f"ready {args.socket}", flush=True))

    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(main())
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
