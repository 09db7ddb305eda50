"""The backend's link server against a recording partition (the DDI partition has its own tests and
is exercised through the server end to end in tests/device and tests/backend/ddi)."""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
import time
from pathlib import Path

import pytest

from pyhsm.backend.server import Backend
from pyhsm.protocol import link
from tests.backend.ddi.ddi_backend import serving


class RecordingPartition:
    """Answers every request with its own payload reversed; remembers resets."""

    def __init__(self) -> None:
        self.resets: list[link.ResetKind] = []
        self.slow_release = threading.Event()
        self.started = 0                 # requests handed to execute
        self.read = 0                    # requests the link read (it asks where each one runs)
        self.ran_on: dict[bytes, str] = {}   # payload -> name of the thread that executed it

    def runs_in_parallel(self, request: link.Request) -> bool:
        self.read += 1
        return request.payload.startswith(b"slow")

    def execute(self, request: link.Request) -> link.Response:
        self.started += 1
        self.ran_on[request.payload] = threading.current_thread().name
        if request.payload.startswith((b"slow", b"worker")):
            self.slow_release.wait(10)
        if request.payload == b"boom":
            raise RuntimeError("partition bug")
        return link.Response(0, request.session_flags, 0, request.session_id, request.payload[::-1])

    def reset(self, kind: link.ResetKind) -> None:
        self.resets.append(kind)


class ServedBackend(tuple):
    """(socket path, partitions by (serial, index), power-on release event), and ``power_ons``: the
    serials powered on, in order."""

    def __new__(cls, parts: tuple, power_ons: list[str]) -> "ServedBackend":
        served = super().__new__(cls, parts)
        served.power_ons = power_ons
        return served


class RootOfTrustDown(Exception):
    pass


@pytest.fixture
def backend(tmp_path: Path):
    partitions: dict[tuple[str, int], RecordingPartition] = {}
    slow_power_on = threading.Event()
    power_ons: list[str] = []

    def power_on(serial: str):
        power_ons.append(serial)
        if serial.startswith("BROKEN"):
            raise RootOfTrustDown("fuzzy extractor could not reconstruct the UDS")
        if serial.startswith("SLOW"):
            slow_power_on.wait(10)
        return object()

    def make_partition(serial: str, index: int, identity) -> RecordingPartition:
        if serial.startswith("CORRUPT"):
            raise ValueError("state file checksum mismatch")
        partitions[(serial, index)] = RecordingPartition()
        return partitions[(serial, index)]

    path = tmp_path / "hsm.sock"
    with serving(Backend(power_on, make_partition, credits=7), path):
        yield ServedBackend((path, partitions, slow_power_on), power_ons)


class Device:
    """The device side of the link, as the C device speaks it."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(5)
        self.sock.connect(str(path))

    def send(self, msg_id: int, message: link.Message) -> None:
        self.sock.sendall(link.encode_frame(msg_id, message))

    def receive(self) -> tuple[int, link.Message]:
        header = self._exactly(link.HEADER.size)
        _, msg_id, length = link.decode_header(header)
        return link.decode_frame(header + self._exactly(length))

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("backend closed the connection")
            data += chunk
        return data

    def hello(self, serial: str = "AZIHSM-TEST-1", partition: int = 0) -> link.HelloAck:
        self.send(1, link.Hello.make(serial, partition))
        msg_id, ack = self.receive()
        assert msg_id == 1 and isinstance(ack, link.HelloAck)
        return ack


def test_hello_grants_credits_and_requests_round_trip(backend):
    path, partitions, _ = backend
    dev = Device(path)
    ack = dev.hello()
    assert (ack.result, ack.major, ack.credits) == (link.HelloAck.ACCEPTED, 1, 7)
    dev.send(42, link.Request(1, 3, 0, 0x07, 5, 8192, b"abc"))
    msg_id, resp = dev.receive()
    assert msg_id == 42
    assert resp == link.Response(0, 0x07, 0, 5, b"cba")
    assert ("AZIHSM-TEST-1", 0) in partitions


def test_second_connection_of_same_partition_is_busy_until_first_leaves(backend):
    path, _, _ = backend
    first = Device(path)
    assert first.hello().result == link.HelloAck.ACCEPTED
    assert Device(path).hello().result == link.HelloAck.BUSY
    assert Device(path).hello(partition=1).result == link.HelloAck.ACCEPTED
    first.sock.close()
    deadline = time.monotonic() + 5
    while Device(path).hello().result == link.HelloAck.BUSY:
        assert time.monotonic() < deadline, "partition stayed busy after its device left"
        time.sleep(0.05)


def test_partition_state_is_kept_across_reconnects(backend):
    path, partitions, _ = backend
    assert Device(path).hello().result == link.HelloAck.ACCEPTED
    first = partitions[("AZIHSM-TEST-1", 0)]
    dev = Device(path)
    deadline = time.monotonic() + 5
    while dev.hello().result != link.HelloAck.ACCEPTED:
        assert time.monotonic() < deadline
        dev = Device(path)
    assert partitions[("AZIHSM-TEST-1", 0)] is first


def test_unsupported_version_is_refused(backend):
    path, _, _ = backend
    dev = Device(path)
    dev.send(1, link.Hello(2, 0, 64, b"X".ljust(32, b"\0"), 0))
    _, ack = dev.receive()
    assert ack.result == link.HelloAck.VERSION_UNSUPPORTED


def test_root_of_trust_failure_is_reported_in_hello_ack(backend):
    path, partitions, _ = backend
    assert Device(path).hello("BROKEN-1").result == link.HelloAck.ROOT_OF_TRUST_FAILURE
    assert not partitions


def test_unusable_partition_state_is_reported_in_hello_ack(backend):
    path, partitions, _ = backend
    assert Device(path).hello("CORRUPT-1").result == link.HelloAck.STATE_UNUSABLE
    assert not partitions
    assert Device(path).hello("AZIHSM-TEST-1").result == link.HelloAck.ACCEPTED


def test_reset_reaches_the_partition_after_earlier_requests(backend):
    path, partitions, _ = backend
    dev = Device(path)
    dev.hello()
    part = partitions[("AZIHSM-TEST-1", 0)]
    dev.send(10, link.Request(1, 1, 0, 0, 0, 8192, b"x"))
    dev.send(11, link.Reset(link.ResetKind.NSSR))
    answers = dict(dev.receive() for _ in range(2))
    assert answers[11] == link.ResetAck(link.ResetKind.NSSR)
    assert isinstance(answers[10], link.Response)
    assert part.resets == [link.ResetKind.NSSR]


def test_cancel_is_accepted_and_the_link_goes_on(backend):
    path, _, _ = backend
    dev = Device(path)
    dev.hello()
    dev.send(20, link.Request(1, 1, 0, 0, 0, 8192, b"first"))
    dev.send(21, link.Cancel(20))
    dev.send(22, link.Request(1, 2, 0, 0, 0, 8192, b"next"))
    assert [dev.receive()[0] for _ in range(2)] == [20, 22]


def test_parallel_work_does_not_hold_up_later_requests(backend):
    path, partitions, _ = backend
    dev = Device(path)
    dev.hello()
    part = partitions[("AZIHSM-TEST-1", 0)]
    dev.sock.sendall(link.encode_frame(30, link.Request(1, 1, 0, 0, 0, 8192, b"slow sign"))
                     + link.encode_frame(31, link.Request(1, 2, 0, 0, 0, 8192, b"quick")))
    assert dev.receive() == (31, link.Response(0, 0, 0, 0, b"kciuq"))
    part.slow_release.set()
    assert dev.receive() == (30, link.Response(0, 0, 0, 0, b"ngis wols"))
    assert part.ran_on[b"slow sign"].startswith("hsm-crypto")


def test_a_lone_compute_bound_request_runs_on_the_connection_thread_until_requests_overlap(backend):
    """With nothing else of the device waiting and no worker busy, a compute-bound request runs on the
    connection's thread (no hand-off). A request that arrives meanwhile waits for it, and the next
    compute-bound one goes to a worker again."""
    path, partitions, _ = backend
    dev = Device(path)
    dev.hello()
    part = partitions[("AZIHSM-TEST-1", 0)]
    dev.send(40, link.Request(1, 1, 0, 0, 0, 8192, b"slow lone"))
    time.sleep(0.2)
    dev.send(41, link.Request(1, 2, 0, 0, 0, 8192, b"meanwhile"))
    time.sleep(0.2)
    assert part.started == 1                 # "meanwhile" waits behind the lone request
    part.slow_release.set()
    assert [dev.receive()[0] for _ in range(2)] == [40, 41]
    assert part.ran_on[b"slow lone"] == "hsm-link"
    dev.send(42, link.Request(1, 3, 0, 0, 0, 8192, b"slow after overlap"))
    assert dev.receive()[0] == 42
    assert part.ran_on[b"slow after overlap"].startswith("hsm-crypto")
    dev.send(43, link.Request(1, 4, 0, 0, 0, 8192, b"slow alone again"))
    assert dev.receive()[0] == 43
    assert part.ran_on[b"slow alone again"] == "hsm-link"


def test_slow_power_on_of_one_device_does_not_stall_another(backend):
    path, _, slow_power_on = backend
    slow = Device(path)
    slow.send(1, link.Hello.make("SLOW-1"))
    fast = Device(path)
    assert fast.hello("FAST-1").result == link.HelloAck.ACCEPTED  # while SLOW-1 is still powering on
    slow_power_on.set()
    assert slow.receive()[1].result == link.HelloAck.ACCEPTED


def test_unknown_reset_kind_closes_the_connection(backend):
    path, partitions, _ = backend
    dev = Device(path)
    dev.hello()
    dev.send(3, link.Reset(9))
    with pytest.raises(ConnectionError):
        dev.receive()
    assert partitions[("AZIHSM-TEST-1", 0)].resets == []


def test_partition_exception_becomes_internal_error_status(backend):
    path, _, _ = backend
    dev = Device(path)
    dev.hello()
    dev.send(5, link.Request(1, 1, 0, 0, 0, 8192, b"boom"))
    _, resp = dev.receive()
    assert resp.status == link.Status.INTERNAL_ERROR and resp.payload == b""
    dev.send(6, link.Request(1, 2, 0, 0, 0, 8192, b"ok"))
    assert dev.receive()[1].payload == b"ko"


@pytest.mark.parametrize("garbage", [
    pytest.param(b"XXXX" + bytes(12), id="bad-magic"),
    pytest.param(struct.pack("<4sBBHII", b"AZHL", 9, 2, 0, 1, 0), id="bad-version"),
    pytest.param(struct.pack("<4sBBHII", b"AZHL", 1, 0x55, 0, 1, 0), id="unknown-type"),
    pytest.param(struct.pack("<4sBBHII", b"AZHL", 1, 2, 1, 1, 0), id="nonzero-flags"),
    pytest.param(struct.pack("<4sBBHII", b"AZHL", 1, 2, 0, 1, 1 << 20), id="oversize-body"),
    pytest.param(struct.pack("<4sBBHII", b"AZHL", 1, 6, 0, 1, link.MAX_AES_BODY + 1), id="oversize-aes-body"),
    pytest.param(struct.pack("<4sBBHII", b"AZHL", 1, 2, 0, 1, 4) + bytes(4), id="short-request"),
    pytest.param(link.encode_frame(3, link.Request(1, 1, 0, 0, 0, 8192, b"abc"))[:-1],
                 id="truncated-then-eof"),
])
def test_malformed_frames_close_the_connection_and_server_lives(backend, garbage, reliability):
    path, _, _ = backend
    dev = Device(path)
    dev.hello()
    dev.sock.sendall(garbage)
    dev.sock.shutdown(socket.SHUT_WR)
    with pytest.raises((ConnectionError, OSError)):
        dev.receive()
    other = Device(path)
    assert other.hello("AZIHSM-OTHER").result == link.HelloAck.ACCEPTED
    reliability.record("hostile socket peer", "malformed link frames", 1,
                       "connection closed, logged; the backend serves others")


def test_aes_frames_carry_one_mib_and_a_gcm_tail():
    """AES_REQUEST / AES_RESPONSE bodies: 1 MiB per direction plus a 15-byte GCM tail (docs/link-protocol.md)."""
    header = lambda kind, n: struct.pack("<4sBBHII", b"AZHL", 1, kind, 0, 1, n)
    for kind in (link.AesRequest.TYPE, link.AesResponse.TYPE):
        assert link.decode_header(header(kind, link.MAX_AES_BODY))[2] == link.MAX_AES_BODY
        with pytest.raises(link.LinkError):
            link.decode_header(header(kind, link.MAX_AES_BODY + 1))
    largest = link.AesResponse(1, 1, 0, 0, bytes(16), bytes(12), 0, bytes(link.MAX_AES_DATA))
    assert link.decode_frame(link.encode_frame(1, largest))[1] == largest
    with pytest.raises(link.LinkError):
        link.AesResponse.decode_body(link.AesResponse(1, 1, 0, 0, bytes(16), bytes(12), 0,
                                                      bytes(link.MAX_AES_DATA + 1)).encode_body())


def test_request_before_hello_is_a_protocol_violation(backend):
    path, _, _ = backend
    dev = Device(path)
    dev.send(1, link.Request(1, 1, 0, 0, 0, 8192, b"abc"))
    with pytest.raises(ConnectionError):
        dev.receive()


def test_concurrent_hellos_for_a_new_device_share_one_power_on(backend):
    path, partitions, slow_power_on = backend
    devices = [Device(path) for _ in range(6)]
    for i, dev in enumerate(devices):
        dev.send(1, link.Hello.make("SLOW-SHARED", partition=i % 3))
    time.sleep(0.2)
    slow_power_on.set()
    results = [dev.receive()[1].result for dev in devices]
    assert results.count(link.HelloAck.ACCEPTED) == 3       # one per partition
    assert results.count(link.HelloAck.BUSY) == 3           # the second connection of each partition
    assert backend.power_ons.count("SLOW-SHARED") == 1
    assert sorted(k for k in partitions if k[0] == "SLOW-SHARED") == [("SLOW-SHARED", i) for i in range(3)]


def test_a_failed_power_on_is_tried_again_by_the_next_hello(backend):
    path, _, _ = backend
    assert Device(path).hello("BROKEN-2").result == link.HelloAck.ROOT_OF_TRUST_FAILURE
    assert Device(path).hello("BROKEN-2").result == link.HelloAck.ROOT_OF_TRUST_FAILURE
    assert backend.power_ons.count("BROKEN-2") == 2


@pytest.mark.parametrize("serial_raw, index", [
    pytest.param(b"", 0, id="empty"),
    pytest.param(b"\xff", 0, id="non-ascii"),
    pytest.param(b"A\x01B", 0, id="control-character"),
    pytest.param(b"A\0B", 0, id="embedded-nul"),
    pytest.param(b"OK-SERIAL", 64, id="partition-64"),
    pytest.param(b"OK-SERIAL", 0xFFFFFFFF, id="partition-max"),
])
def test_invalid_device_names_are_refused(backend, serial_raw, index, reliability):
    path, partitions, _ = backend
    dev = Device(path)
    dev.send(1, link.Hello(1, 0, 64, serial_raw.ljust(32, b"\0"), index))
    assert dev.receive()[1].result == link.HelloAck.INVALID_DEVICE
    assert not partitions and not backend.power_ons
    reliability.record("hostile socket peer", "invalid serials and partition indices in HELLO", 1,
                       "refused (HELLO_ACK 5); nothing created on disk")


def test_valid_device_names_at_the_limits_are_accepted(backend):
    path, partitions, _ = backend
    assert Device(path).hello("~" * 32, 63).result == link.HelloAck.ACCEPTED
    assert Device(path).hello(" x", 0).result == link.HelloAck.ACCEPTED
    assert ("~" * 32, 63) in partitions


def test_peers_of_other_uids_are_refused(tmp_path, reliability):
    """SO_PEERCRED: a backend that allows only another uid closes our connection without a HELLO_ACK."""
    path = tmp_path / "hsm.sock"
    server = Backend(lambda serial: object(), lambda *a: RecordingPartition(),
                     allowed_uids=frozenset({os.getuid() + 4242}))
    with serving(server, path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        dev = Device(path)
        with pytest.raises((ConnectionError, OSError)):
            dev.send(1, link.Hello.make("AZIHSM-TEST-1"))
            dev.receive()
        assert server.partitions() == []
    reliability.record("hostile socket peer", "connection from a uid that is not allowed", 1,
                       "closed before HELLO; no device reachable")


def test_credits_bound_the_requests_in_flight(backend):
    """A device that exceeds its 7 credits is not read further until answers are flushed."""
    path, partitions, _ = backend
    dev = Device(path)
    dev.hello()
    part = partitions[("AZIHSM-TEST-1", 0)]
    dev.sock.sendall(b"".join(link.encode_frame(100 + msg_id, link.Request(1, msg_id, 0, 0, 0, 8192, b"slow %d" % msg_id))
                              for msg_id in range(20)))   # in one write: none of them is alone, all go to workers
    time.sleep(0.5)
    assert part.read == 7
    part.slow_release.set()
    assert sorted(dev.receive()[0] for _ in range(20)) == list(range(100, 120))
    assert part.read == part.started == 20


def test_a_device_that_does_not_read_its_answers_stops_being_read(backend):
    path, partitions, _ = backend
    dev = Device(path)
    dev.hello()
    part = partitions[("AZIHSM-TEST-1", 0)]
    dev.sock.setblocking(False)
    big = link.encode_frame(1, link.Request(1, 1, 0, 0, 0, 8192, b"x" * 8000))
    sent = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            sent += dev.sock.send(big)
        except BlockingIOError:
            time.sleep(0.01)
    frames = sent // len(big)
    assert frames > 20                       # the backend did read for a while ...
    assert part.read < frames - 7            # ... then stopped: answers not flushed, credits used up


def test_answers_the_socket_did_not_take_arrive_whole_and_in_order(backend):
    """Answers written while the device does not read fill the socket; the rest wait for the link's
    writer, in order, and arrive whole once the device reads: serial and worker answers alike, and
    every credit comes back."""
    path, partitions, _ = backend
    dev = Device(path)
    dev.hello()
    partitions[("AZIHSM-TEST-1", 0)].slow_release.set()
    payloads = [(b"slow" if i % 3 == 0 else b"fast") + bytes([i]) * 8000 for i in range(80)]
    frames = b"".join(link.encode_frame(i, link.Request(1, i, 0, 0, 0, 8192, p)) for i, p in enumerate(payloads))
    sender = threading.Thread(target=dev.sock.sendall, args=(frames,))
    sender.start()
    time.sleep(0.5)                           # 640 KB of answers: more than the socket holds
    answers = dict(dev.receive() for _ in payloads)
    sender.join()
    assert {msg_id: a.payload for msg_id, a in answers.items()} == {i: p[::-1] for i, p in enumerate(payloads)}
    serial = [msg_id for msg_id in answers if msg_id % 3]
    assert serial == sorted(serial)
    dev.send(99, link.Request(1, 99, 0, 0, 0, 8192, b"ping"))
    assert dev.receive() == (99, link.Response(0, 0, 0, 0, b"gnip"))


def test_work_on_a_worker_thread_does_not_stall_another_device(backend):
    path, partitions, _ = backend
    busy = Device(path)
    busy.hello("AZIHSM-BUSY")
    busy.send(1, link.Request(1, 1, 0, 0, 0, 8192, b"worker: key generation"))
    time.sleep(0.1)
    other = Device(path)
    other.hello("AZIHSM-OTHER")
    other.send(2, link.Request(1, 1, 0, 0, 0, 8192, b"ping"))
    assert other.receive() == (2, link.Response(0, 0, 0, 0, b"gnip"))
    partitions[("AZIHSM-BUSY", 0)].slow_release.set()
    assert busy.receive()[0] == 1


def test_serial_work_of_one_link_keeps_arrival_order(backend):
    path, partitions, _ = backend
    dev = Device(path)
    dev.hello()
    partitions[("AZIHSM-TEST-1", 0)].slow_release.set()
    for msg_id in range(10):
        payload = b"worker" if msg_id % 2 else b"inline"
        dev.send(msg_id, link.Request(1, msg_id, 0, 0, 0, 8192, payload))
    assert [dev.receive()[0] for _ in range(10)] == list(range(10))


def test_a_device_reconnecting_at_once_is_not_refused_as_busy(backend):
    path, _, _ = backend
    for _ in range(20):
        dev = Device(path)
        assert dev.hello().result == link.HelloAck.ACCEPTED
        dev.sock.close()


def test_more_requests_at_once_than_credits_are_all_answered(backend):
    """A device that sends more than its 7 credits in one write gets every answer (the link reads ahead
    into its receive buffer but takes one credit per request)."""
    path, _, _ = backend
    dev = Device(path)
    dev.hello()
    dev.sock.sendall(b"".join(link.encode_frame(200 + i, link.Request(1, i, 0, 0, 0, 8192, b"%d" % i))
                              for i in range(20)))
    assert [dev.receive()[0] for _ in range(20)] == list(range(200, 220))


def test_the_backend_reuses_freed_memory_for_large_payloads():
    """After ``_keep_freed_memory`` (which ``serve`` calls), 1 MiB payload buffers made and freed on a
    connection thread, as for each 1 MiB AES command, reuse pages already mapped (untuned glibc:
    about 37,000 page faults for this loop; docs/benchmarks.md)."""
    import resource

    from pyhsm.backend import server
    server._keep_freed_memory()
    faults: list[int] = []

    def commands() -> None:
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        for _ in range(50):
            request = bytearray(1 << 20)          # a payload read from the socket
            request[::4096] = b"x" * 256
            answer = bytes(request) + b"tag"      # the cipher's output
            del request
            data = answer[:-3]                    # the answer's payload
            del answer, data
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)

    thread = threading.Thread(target=commands)
    thread.start()
    thread.join()
    assert faults[0] < 50 * 256 // 4, f"{faults[0]} page faults for 50 commands of 1 MiB"
