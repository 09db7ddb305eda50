"""The HSM backend process: serves azihsm devices over the link protocol (docs/link-protocol.md).

One asyncio loop accepts device connections on a UNIX socket. Each connection names its device in
HELLO; the backend powers the device on (its root of trust re-derives the identity, on a worker
thread so other devices keep being served), then executes the connection's REQUESTs on the loop in
arrival order and answers each at once. Executing in place keeps the round trip short: a hand-off
to a thread costs more than most DDI operations. Only what the partition calls compute-bound
(signing, key agreement: OpenSSL work done without the GIL and without the partition lock) goes to
a pool of worker threads, so that concurrent sessions use every core; those answers may overtake
later ones, which the device matches by msg_id.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from pyhsm import link
from pyhsm.identity import DeviceIdentity

if TYPE_CHECKING:
    from pyhsm.trace.record import Recorder

log = logging.getLogger("pyhsm.server")

HELLO_TIMEOUT_S = 5.0
DEFAULT_CREDITS = 32


class Partition(Protocol):
    def execute(self, request: link.Request) -> link.Response: ...
    def runs_in_parallel(self, request: link.Request) -> bool: ...
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


class Backend:
    """Serves any number of devices; one partition state per (serial, partition) pair."""

    def __init__(self, power_on: PowerOn, make_partition: PartitionFactory, *,
                 credits: int = DEFAULT_CREDITS, recorder: Recorder | None = None) -> None:
        self._power_on = power_on
        self._recorder = recorder
        self._workers = concurrent.futures.ThreadPoolExecutor(
            max_workers=os.cpu_count() or 2, thread_name_prefix="hsm-crypto")
        self._make_partition = make_partition
        self._credits = credits
        self._identities: dict[str, DeviceIdentity] = {}
        self._served: dict[tuple[str, int], _Served] = {}

    def devices(self) -> list[tuple[str, DeviceIdentity]]:
        """The powered-on devices (serial, identity)."""
        return list(self._identities.items())

    def partitions(self) -> list[tuple[str, int, Partition]]:
        """The served partitions (serial, index, partition)."""
        return [(serial, index, s.partition) for (serial, index), s in self._served.items()]

    async def serve(self, socket_path: Path, ready: Callable[[], None] | None = None) -> None:
        """Listen on ``socket_path`` until cancelled."""
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        server = await asyncio.start_unix_server(self._connection, path=str(socket_path),
                                                 limit=2 * link.MAX_BODY)
        log.info("listening on %s", socket_path)
        if ready:
            ready()
        async with server:
            await server.serve_forever()

    async def _partition(self, serial: str, index: int) -> _Served:
        """The served partition, powering its device on first. Raises ``_Refused``."""
        key = (serial, index)
        if key not in self._served:
            if serial not in self._identities:
                try:
                    identity = await asyncio.to_thread(self._power_on, serial)
                except Exception as exc:  # the device cannot boot: it shows CFS
                    raise _Refused(link.HelloAck.ROOT_OF_TRUST_FAILURE,
                                   f"device {serial}: root of trust failure: {exc}") from exc
                self._identities.setdefault(serial, identity)
            if key not in self._served:
                try:
                    partition = self._make_partition(serial, index, self._identities[serial])
                except Exception as exc:
                    raise _Refused(link.HelloAck.STATE_UNUSABLE,
                                   f"device {serial} partition {index}: state unusable: {exc}") from exc
                self._served.setdefault(key, _Served(partition, serial, index))
        return self._served[key]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served: _Served | None = None
        try:
            served = await self._handshake(reader, writer)
            if served:
                await _Link(served, reader, writer, self._workers, self._recorder).run()
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


class _Link:
    """One accepted device connection.

    Requests are executed in arrival order and answered at once, except compute-bound ones, which
    run on the worker pool and are answered when done. A CANCEL therefore arrives after its answer
    was sent or while its work runs; the device drops that answer by msg_id, and the backend only
    notes it. With a ``recorder``, every request and reset is traced (always from the loop thread).
    """

    def __init__(self, served: _Served, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 workers: concurrent.futures.Executor, recorder: Recorder | None = None) -> None:
        self._served = served
        self._recorder = recorder
        self._partition = served.partition
        self._reader = reader
        self._writer = writer
        self._workers = workers
        self._running: set[asyncio.Future] = set()

    async def run(self) -> None:
        try:
            while True:
                msg_id, message = await link.read_frame(self._reader)
                match message:
                    case link.Request() if self._partition.runs_in_parallel(message):
                        self._in_parallel(msg_id, message)
                        continue
                    case link.Request():
                        answer: link.Message = self._answer(msg_id, message, *self._execute(message))
                    case link.Reset(kind=kind):
                        self._partition.reset(_reset_kind(kind))
                        if self._recorder is not None:
                            self._recorder.reset(self._served.serial, self._served.index, kind)
                        answer = link.ResetAck(kind)
                    case link.Cancel(msg_id=cancelled):
                        log.debug("device no longer waits for message %d", cancelled)
                        continue
                    case _:
                        raise link.LinkError(f"unexpected {type(message).__name__} from device")
                self._writer.write(link.encode_frame(msg_id, answer))
                await self._writer.drain()
        finally:
            for work in self._running:
                work.cancel()

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

    def _in_parallel(self, msg_id: int, request: link.Request) -> None:
        work = asyncio.get_running_loop().run_in_executor(self._workers, self._execute, request)
        self._running.add(work)

        def done(finished: asyncio.Future) -> None:
            self._running.discard(finished)
            if finished.cancelled() or self._writer.is_closing():
                return
            answer = self._answer(msg_id, request, *finished.result())
            self._writer.write(link.encode_frame(msg_id, answer))

        work.add_done_callback(done)


def _reset_kind(kind: int) -> link.ResetKind:
    try:
        reset = link.ResetKind(kind)
    except ValueError:
        raise link.LinkError(f"unknown reset kind {kind}") from None
    log.info("device reset: %s", reset.name)
    return reset


def default_backend(state_dir: Path, firmware_dir: Path, credits: int = DEFAULT_CREDITS,
                    recorder: Recorder | None = None) -> Backend:
    """The production wiring: PUF/DICE root of trust and the DDI partition.

    The root of trust's numba kernels are loaded (or compiled) here, so that a device's first
    power-on does not pay for it.
    """
    from pyhsm.ddi.partition import Partition as DdiPartition
    from pyhsm.rot import kernels, power_on

    kernels.warm_up()

    def device_dir(serial: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in serial) or "_"
        return state_dir / "devices" / safe

    def identity(serial: str) -> DeviceIdentity:
        return power_on(device_dir(serial), firmware_dir, serial=serial)

    def partition(serial: str, index: int, ident: DeviceIdentity) -> Partition:
        return DdiPartition(serial=serial, index=index,
                            state_dir=device_dir(serial) / f"partition-{index}", identity=ident)

    return Backend(identity, partition, credits=credits, recorder=recorder)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="run the HSM backend",
        description="Run the HSM backend: listen on a UNIX socket for azihsm devices (QEMU connects "
                    "with -chardev socket,path=SOCKET,reconnect-ms=500) and serve each device's "
                    "partition. Stops on SIGINT or SIGTERM.")
    p.add_argument("--socket", type=Path, required=True,
                   help="UNIX socket path to listen on (replaced if it exists)")
    p.add_argument("--state", type=Path, required=True,
                   help="state directory: one sub-directory per device with its non-volatile store "
                        "(PUF helper data, anti-rollback counters) and its partitions' key stores")
    p.add_argument("--firmware", type=Path, default=None,
                   help="directory of HSM firmware stage images measured at power-on "
                        "(default: build/images/firmware in the source tree)")
    p.add_argument("--credits", type=int, default=DEFAULT_CREDITS,
                   help=f"commands a device may have in flight (default {DEFAULT_CREDITS})")
    p.add_argument("--trace", type=Path, default=None, metavar="FILE",
                   help="append every command and reset as a JSON line to FILE (secrets redacted; "
                        "read it with `pyhsm trace FILE [--follow]`)")
    p.add_argument("--secrets-out", type=Path, default=None, metavar="FILE",
                   help="debugging only: on SIGUSR1 and at exit, write the HSM's secrets (root "
                        "keys, attestation key, masking keys, private key material) to FILE "
                        "(mode 0600) for `pyhsm inspect --scan-secrets`")
    p.set_defaults(func=_serve_command)


def default_firmware_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "build" / "images" / "firmware"


def _serve_command(args: argparse.Namespace) -> int:
    args.state.mkdir(parents=True, exist_ok=True)
    recorder = None
    if args.trace:
        from pyhsm.trace.record import Recorder
        recorder = Recorder(args.trace)
    backend = default_backend(args.state, args.firmware or default_firmware_dir(), args.credits,
                              recorder)

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
    log.info("stopped")
    return 0
