"""Backend: fast-path AES-256-GCM at 4 KiB (1 and 8 streams) and 1 MiB (1 stream) through the backend
socket against ``cryptography`` called directly, in one run. Goal: 4 KiB at 8 concurrent streams
reaches at least 50 % of the direct rate.

The backend runs as its own process (tests/backend/ddi/ddi_backend.py: the real link server and DDI
partition), with one bulk key imported through RsaUnwrap (its output is checked against
``cryptography`` once) and one session per stream. It is driven two ways:

- as the device drives it, from C (the goal's figure): one connection, each stream keeping one
  AES_REQUEST in flight as an AES queue does, pre-encoded frames, all streams on one thread of a small
  C program (``tests/bench/aes_link_driver.c``, compiled by the bench with the machine's ``cc``), so
  the driver costs about what the azihsm device costs beside the backend;
- the same from Python (``PipelinedDevice``): one client thread, which on two cores takes CPU from
  the backend;
- through the client library: each stream a thread calling ``SocketTransport.aes_gcm_encrypt``.

The direct anchor is ``AESGCM.encrypt`` on the same data in as many threads of this process.

    build/venv/bin/python -m tests.bench.bench_aes_backend [seconds per measurement, default 5]
        [--baseline DIR]

``--baseline DIR`` also starts a backend from another copy of the tree (e.g. the last commit:
``git archive HEAD pyhsm tests | tar -x -C DIR``) and measures it in the same alternation, so a change
to the backend is measured before and after in one run; and it times the fast-path module alone
(``fastpath.execute`` of a 4 KiB GCM and XTS command, in this process, both trees' modules
alternating), which the socket round trip otherwise hides. Slices of every side alternate (5 each);
medians; the host load is printed before and after.

Last, it times XTS over 1 MiB in data units of 512, 4096 and 8192 bytes: the fast path's one pass
against ``cryptography`` one unit at a time and against ``cryptography`` over the whole buffer.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
from pathlib import Path
from typing import Callable, Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pyhsm import paths
from pyhsm.client import HsmClient, Usage
from pyhsm.client.socket_transport import SocketTransport
from pyhsm.protocol import link
from pyhsm.protocol.ddi.types import KeyClass
from tests.backend.ddi import ddi_backend
from tests.backend.ddi.ddi_helpers import rsa_aes_wrap
from tests.bench.bench_ddi import APP_ID, PIN, rate

GOAL = 0.50
SLICES = 5
SIZE = 4096
LARGEST = link.MAX_AES_TRANSFER   # 1 MiB, the largest buffer a command carries
ROWS = ((SIZE, 1), (SIZE, 8), (LARGEST, 1))   # (bytes, streams)
STREAMS = 8                       # the goal's row: 4 KiB at 8 streams
KEY = os.urandom(32)
DATA = {size: os.urandom(size) for size in (SIZE, LARGEST)}
IV = os.urandom(12)


@contextlib.contextmanager
def backend_process(tree: Path | None = None) -> Iterator[Path]:
    """A backend process (this tree, or the copy at ``tree``) and its socket, stopped when the block ends."""
    work = Path(tempfile.mkdtemp(prefix="bench-aes-backend-"))
    sock = work / "hsm.sock"
    if tree is None:
        proc = ddi_backend.start(sock, work)
    else:
        proc = subprocess.Popen([sys.executable, "-m", "tests.backend.ddi.ddi_backend", str(sock), str(work)],
                                cwd=tree, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)


def open_streams(sock: Path, streams: int, partition: int) -> tuple[int, list[dict[str, int]]]:
    """A bulk GCM key and ``streams`` open sessions on ``partition``: (key id, session ids)."""
    transport = SocketTransport(sock, serial="BENCH-AES-0001", partition=partition)
    try:
        setup = HsmClient(transport)
        setup.establish_credential(APP_ID, PIN, setup.init_bk3(bytes(range(48))),
                                   ec.generate_private_key(ec.SECP384R1()))
        setup.open_session(APP_ID, PIN)
        kek = setup.get_unwrapping_key()
        public = serialization.load_der_public_key(bytes(kek.pub_key.der))
        key_id = setup.rsa_unwrap(kek.key_id, rsa_aes_wrap(public, KEY), KeyClass.AesGcmBulk,
                                  Usage.ENCRYPT_DECRYPT).bulk_key_id
        setup.close_session()
        sessions = []
        for _ in range(streams):
            opened = HsmClient(transport).open_session(APP_ID, PIN)
            sessions.append({"session_id": opened.sess_id, "short_app_id": opened.short_app_id})
        for data in DATA.values():
            first = transport.aes_gcm_encrypt(key_id, IV, data, **sessions[0])
            assert first.data + first.tag == AESGCM(KEY).encrypt(IV, data, None), "fast path differs from cryptography"
    finally:
        transport.close()
    return key_id, sessions


def stream_calls(sock: Path, streams: int) -> list[Callable[[bytes], object]]:
    """One GCM encrypt of the data given per call, for each of ``streams`` sessions on one
    client-library connection."""
    key_id, sessions = open_streams(sock, streams, partition=0)
    transport = SocketTransport(sock, serial="BENCH-AES-0001")
    return [lambda data, ids=ids: transport.aes_gcm_encrypt(key_id, IV, data, **ids) for ids in sessions]


def request_frames(key_id: int, sessions: list[dict[str, int]]) -> dict[int, list[bytes]]:
    """For each data size, one encoded GCM-encrypt AES_REQUEST per session (stream ``i`` on AES queue
    cid ``i``), msg_id 0: the frames a device-style driver keeps in flight."""
    return {size: [link.encode_frame(0, link.AesRequest(
        link.AES_BODY_VERSION, link.AesCipher.GCM, 0, 0, 256, i, ids["session_id"], ids["short_app_id"],
        key_id, 0, 0, 0, bytes(16), IV, 0, size, data)) for i, ids in enumerate(sessions)]
        for size, data in DATA.items()}


class PipelinedDevice:
    """The backend's partition 1 driven as the device drives it: one connection; stream ``i`` keeps one
    pre-encoded AES_REQUEST (its own session) in flight, sent again as soon as its answer is in; all
    streams on the calling thread."""

    def __init__(self, sock: Path, streams: int) -> None:
        key_id, sessions = open_streams(sock, streams, partition=1)
        self._frames = request_frames(key_id, sessions)
        self._streams = streams
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(10)
        self._sock.connect(str(sock))
        self._reader = link.SocketReader(self._sock)
        self._sock.sendall(link.encode_frame(0, link.Hello.make("BENCH-AES-0001", 1)))
        _, ack = link.read_frame(self._reader.read)
        assert isinstance(ack, link.HelloAck) and ack.result == link.HelloAck.ACCEPTED, ack
        self._next_id = 1

    def _send(self, size: int, stream: int) -> None:
        """Stream ``stream``'s request of ``size`` bytes under a fresh msg_id (msg_id modulo the stream
        count names it); the pre-encoded frame is sent as it is, after a header with that msg_id."""
        frame = self._frames[size][stream]
        msg_id, self._next_id = self._next_id * self._streams + stream, self._next_id + 1
        head, body = frame[:8] + msg_id.to_bytes(4, "little") + frame[12:16], memoryview(frame)[16:]
        if len(body) < link.COPY_LIMIT:
            self._sock.sendall(head + body)
        else:
            self._sock.sendall(head)
            self._sock.sendall(body)

    def rate(self, size: int, streams: int, seconds: float) -> float:
        """AES_REQUESTs of ``size`` bytes answered per second with ``streams`` of them in flight; every
        answer checked."""
        answered = 0
        start = time.perf_counter()
        stop = start + seconds
        for i in range(streams):
            self._send(size, i)
        in_flight = streams
        while in_flight:
            msg_id, answer = link.read_frame(self._reader.read)
            assert isinstance(answer, link.AesResponse) and answer.status == 0 and len(answer.data) == size, answer
            answered += 1
            if time.perf_counter() < stop:
                self._send(size, msg_id % self._streams)
            else:
                in_flight -= 1
        return answered / (time.perf_counter() - start)


class CDevice:
    """What ``PipelinedDevice`` does, on the backend's partition 2, from ``tests/bench/aes_link_driver.c``
    (built into build/bench/ when missing or older than its source)."""

    SOURCE = Path(__file__).with_name("aes_link_driver.c")

    def __init__(self, sock: Path, streams: int) -> None:
        key_id, sessions = open_streams(sock, streams, partition=2)
        binary = paths.build() / "bench" / "aes_link_driver"
        if not binary.exists() or binary.stat().st_mtime < self.SOURCE.stat().st_mtime:
            binary.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["cc", "-O2", "-Wall", "-o", str(binary), str(self.SOURCE)], check=True)
        self._frames = Path(tempfile.mkdtemp(prefix="bench-aes-frames-")) / "frames"
        with open(self._frames, "wb") as out:
            def put(frame: bytes) -> None:
                out.write(len(frame).to_bytes(4, "little") + frame)
            put(link.encode_frame(0, link.Hello.make("BENCH-AES-0001", 2)))
            for size, frames in request_frames(key_id, sessions).items():
                out.write(len(frames).to_bytes(4, "little") + size.to_bytes(4, "little"))
                for frame in frames:
                    put(frame)
        self._index = {size: i for i, size in enumerate(DATA)}
        self._proc = subprocess.Popen([str(binary), str(sock), str(self._frames)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None and self._proc.stdout.readline().strip() == "ready"

    def rate(self, size: int, streams: int, seconds: float) -> float:
        """AES_REQUESTs of ``size`` bytes answered per second with ``streams`` in flight (the driver
        checks every answer and exits on a wrong one)."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{self._index[size]} {streams} {seconds}\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline().split()
        assert len(line) == 2, f"aes_link_driver failed (exit {self._proc.poll()})"
        return int(line[0]) / float(line[1])

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(10)
        self._frames.unlink()
        self._frames.parent.rmdir()


def direct_calls(size: int, streams: int) -> list[Callable[[], object]]:
    return [lambda g=AESGCM(KEY): g.encrypt(IV, DATA[size], None) for _ in range(streams)]


def execute_costs(baseline: Path, rounds: int = 25, calls: int = 2000) -> None:
    """Microseconds per ``fastpath.execute`` (4 KiB GCM, 4 KiB XTS), this tree against ``baseline``."""
    from pyhsm.backend.ddi import fastpath
    from pyhsm.backend.ddi.keys import KeyEntry
    from pyhsm.backend.ddi.vault import Vault
    from pyhsm.protocol import link
    from pyhsm.protocol.ddi.types import Flag, KeyType
    spec = importlib.util.spec_from_file_location("baseline_fastpath", baseline / "pyhsm/backend/ddi/fastpath.py")
    assert spec is not None and spec.loader is not None
    before = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(before)
    vault = Vault(ec.generate_private_key(ec.SECP384R1()))
    vault.credential = (APP_ID, bytes(16))
    vault.sessions.allocate((1, 0)).short_app_id = 1
    ids = [vault.keys.insert(KeyEntry(kind, os.urandom(32), Flag.ENCRYPT | Flag.DECRYPT, APP_ID))
           for kind in (KeyType.AesGcmBulk256, KeyType.AesXtsBulk256, KeyType.AesXtsBulk256)]
    requests = {"GCM": link.AesRequest(1, 0, 0, 0, 256, 0, 0, 1, ids[0], 0, 0, 0, bytes(16), IV, 0, SIZE, DATA[SIZE]),
                "XTS": link.AesRequest(1, 1, 0, 0, 256, 0, 0, 1, ids[1], ids[2], 0, 0, bytes(16), bytes(12), 0,
                                       SIZE, DATA[SIZE])}
    lock = threading.Lock()
    for mode, request in requests.items():
        times: dict[str, list[float]] = {"baseline tree": [], "this tree": []}
        for _ in range(rounds):
            for name, module in (("baseline tree", before), ("this tree", fastpath)):
                assert module.execute(request, vault=vault, lock=lock).status == 0
                times[name].append(timeit.timeit(lambda m=module: m.execute(request, vault=vault, lock=lock),
                                                 number=calls) / calls * 1e6)
        print(f"fastpath.execute {mode} 4 KiB: " + ", ".join(
            f"{name} {statistics.median(t):.2f} us" for name, t in times.items()))


def xts_unit_costs(rounds: int = 7, calls: int = 5) -> None:
    """Milliseconds per 1 MiB of XTS encryption in data units of 512, 4096 and 8192 bytes: the fast
    path's one pass (``xts.crypt``) against ``cryptography`` one cipher object per unit (what the
    backend did before) and against ``cryptography`` over the whole buffer as one unit (the raw XTS
    rate), interleaved, medians; in this process with the backend's allocator settings."""
    from pyhsm.backend import server
    from pyhsm.backend.ddi import xts
    server._keep_freed_memory()
    xts.warm_up()
    key1, key2, data = os.urandom(32), os.urandom(32), DATA[LARGEST]
    for unit in (512, 4096, 8192):
        assert xts.crypt(key1, key2, 0, data, unit, False) == xts.unit_by_unit(key1, key2, 0, data, unit, False)
        sides = {"one pass": lambda u=unit: xts.crypt(key1, key2, 0, data, u, False),
                 "unit by unit": lambda u=unit: xts.unit_by_unit(key1, key2, 0, data, u, False),
                 "whole buffer, one unit": lambda: xts.crypt(key1, key2, 0, data, len(data), False)}
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(rounds):
            for name, call in sides.items():
                times[name].append(timeit.timeit(call, number=calls) / calls * 1e3)
        med = {name: statistics.median(t) for name, t in times.items()}
        print(f"XTS 1 MiB in {unit}-byte units: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in med.items())
              + f"; one pass is {med['unit by unit'] / med['one pass']:.1f}x unit by unit")


def main() -> int:
    args = sys.argv[1:]
    baseline = None
    if "--baseline" in args:
        at = args.index("--baseline")
        baseline = Path(args[at + 1]).resolve()
        del args[at:at + 2]
    seconds = float(args[0]) if args else 5.0
    print(f"load before: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores; "
          f"{SLICES} alternating slices per figure, medians")
    ratios = {}
    with contextlib.ExitStack() as stack:
        backends = {"": stack.enter_context(backend_process())}
        if baseline is not None:
            backends[", baseline tree"] = stack.enter_context(backend_process(baseline))
        sides: dict[str, Callable[[int, int, float], float]] = {}
        for tree, sock in backends.items():
            native = CDevice(sock, STREAMS)
            stack.callback(native.close)
            device = PipelinedDevice(sock, STREAMS)
            calls = stream_calls(sock, STREAMS)
            sides[f"as the device, C{tree}"] = native.rate
            sides[f"as the device, Python{tree}"] = device.rate
            sides[f"client library{tree}"] = (lambda size, n, t, calls=calls:
                                              rate([functools.partial(c, DATA[size]) for c in calls[:n]], t))
        print(f"{'side':38} {'bytes':>8} {'streams':>7} {'op/s':>9} {'MB/s':>8} {'direct op/s':>12} {'ratio':>7}")
        for size, n in ROWS:
            direct = direct_calls(size, n)
            samples: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
            for _ in range(SLICES):
                for name, measure in sides.items():
                    via = measure(size, n, seconds / SLICES)
                    samples[name].append((via, rate(direct, seconds / SLICES)))
            for name, pairs in samples.items():
                via = statistics.median(v for v, _ in pairs)
                anchor = statistics.median(d for _, d in pairs)
                ratios[(name, size, n)] = statistics.median(v / d for v, d in pairs)
                print(f"{name:38} {size:8d} {n:7d} {via:9.0f} {via * size / 1e6:8.1f} {anchor:12.0f} "
                      f"{ratios[(name, size, n)]:7.1%}")
    if baseline is not None:
        execute_costs(baseline)
    xts_unit_costs()
    print(f"load after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ratio = ratios[("as the device, C", SIZE, STREAMS)]
    verdict = "met" if ratio >= GOAL else "NOT met"
    print(f"goal: fast-path GCM 4 KiB at {STREAMS} streams, driven as the device drives it (from C), "
          f">= {GOAL:.0%} of direct: {ratio:.1%} ({verdict}); from Python: "
          f"{ratios[('as the device, Python', SIZE, STREAMS)]:.1%}; through the client library: "
          f"{ratios[('client library', SIZE, STREAMS)]:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
