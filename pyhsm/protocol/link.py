"""Frames of the device-to-backend link (docs/link-protocol.md, version 1.2).

Each message kind is declared once, as a struct layout plus an optional trailing payload; one
encoder and one decoder serve them all.
"""

from __future__ import annotations

import enum
import operator
import socket
import struct
from dataclasses import Field, dataclass, field, fields
from typing import Any, Callable, ClassVar

MAGIC = b"AZHL"
VERSION = 1
MINOR = 2  # 1.1: AES_REQUEST / AES_RESPONSE; 1.2: the migration context (docs/link-protocol.md)
HEADER = struct.Struct("<4sBBHII")
MAX_BODY = 16384
MAX_PAYLOAD = 8192
AES_MINOR = 1            # the first minor version with the AES messages
AES_BODY_VERSION = 1     # byte 0 of every AES_REQUEST / AES_RESPONSE body
MAX_AES_TRANSFER = 1 << 20  # largest SGL transfer per direction (1 MiB, docs/device.md)
MAX_AES_DATA = MAX_AES_TRANSFER + 15  # plus a GCM tail buffer (at most 15 bytes)
MAX_AES_BODY = MAX_AES_TRANSFER + 256
LM_MINOR = 2             # the first minor version with the migration-context messages
LM_BODY_VERSION = 1      # byte 0 of every migration-context body
MAX_LM_CONTEXT = 2048    # largest sealed migration context (docs/link-protocol.md, "Migration context")


class LinkError(Exception):
    """A frame that violates the link protocol; the connection must be closed."""


class ResetKind(enum.IntEnum):
    CONTROLLER = 1  # CC.EN 1 -> 0
    NSSR = 2
    FUNCTION = 3  # QEMU device reset or power-on
    MAILBOX = 4  # serial mailbox only: the host aborted (CTRL.ABORT, docs/serial-mailbox.md)


class Channel(enum.IntEnum):
    """Which of a device's two mailboxes a connection serves (HELLO bytes 6-7)."""

    PCIE = 0  # the PCIe function: one partition, REQUEST/RESPONSE
    SERIAL = 1  # the serial-bus mailbox: the device's management endpoint, MAILBOX_PACKET/ANSWER


class SessionOp(enum.IntEnum):
    NONE = 0
    OPEN = 1
    CLOSE = 2
    IN_SESSION = 3


@dataclass(frozen=True)
class SessionFlags:
    """The session side band: SQE byte 44 and CQE byte 2 (docs/device.md, "Queue entry formats")."""

    op: SessionOp = SessionOp.NONE
    id_valid: bool = False
    short_app_id_valid: bool = False
    safe_to_close: bool = False

    @classmethod
    def from_byte(cls, value: int) -> SessionFlags:
        """The flags of side-band byte ``value`` (one shared object per value: they are immutable)."""
        return _FLAGS[value & 0x1F]

    def to_byte(self) -> int:
        return (int(self.op) | self.id_valid << 2 | self.short_app_id_valid << 3
                | self.safe_to_close << 4)


_FLAGS = [SessionFlags(SessionOp(v & 3), bool(v & 4), bool(v & 8), bool(v & 16)) for v in range(32)]


class Message:
    """Base of all link messages: ``LAYOUT`` covers the fixed fields; ``payload`` (if declared) follows."""

    TYPE: ClassVar[int]
    LAYOUT: ClassVar[struct.Struct]
    HAS_PAYLOAD: ClassVar[bool] = False
    PAYLOAD_LIMIT: ClassVar[int] = MAX_PAYLOAD
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]   # every message is a dataclass

    def encode_parts(self) -> tuple[bytes, bytes | bytearray]:
        """The body as its fixed fields and its payload (the message's own object; b"" if none)."""
        values = self._codec()[0](self)
        if self.HAS_PAYLOAD:
            *fixed, payload = values
            return self.LAYOUT.pack(*fixed, len(payload)), payload
        return self.LAYOUT.pack(*values), b""

    def encode_body(self) -> bytes:
        fixed, payload = self.encode_parts()
        return fixed + payload

    @classmethod
    def _codec(cls) -> tuple[Callable[[Any], tuple[Any, ...]], tuple[str, ...]]:
        """The class's field getter (one C call for every field, in declaration order) and field names,
        made once per class."""
        codec = cls.__dict__.get("_CODEC")
        if codec is None:
            names = tuple(f.name for f in fields(cls))
            getter = operator.attrgetter(*names)
            codec = ((lambda m: (getter(m),)) if len(names) == 1 else getter, names)
            cls._CODEC = codec  # type: ignore[attr-defined]
        return codec

    @classmethod
    def decode_body(cls, body: bytes) -> Message:
        """Decode a body held in memory."""
        if len(body) < cls.LAYOUT.size:
            raise LinkError(f"{cls.__name__}: body of {len(body)} bytes is shorter than {cls.LAYOUT.size}")
        return cls.decode_parts(body[:cls.LAYOUT.size], body[cls.LAYOUT.size:])

    @classmethod
    def decode_parts(cls, fixed: bytes | bytearray, rest: bytes | bytearray) -> Message:
        """Decode a body given as its fixed fields (``LAYOUT.size`` bytes) and what follows them, which
        becomes the payload as it is (not copied)."""
        values = cls.LAYOUT.unpack(fixed)
        if cls.HAS_PAYLOAD:
            length = values[-1]
            if length != len(rest) or length > cls.PAYLOAD_LIMIT:
                raise LinkError(f"{cls.__name__}: payload length {length} but {len(rest)} bytes follow")
            values = values[:-1] + (rest,)
        elif rest:
            raise LinkError(f"{cls.__name__}: {len(rest)} trailing bytes")
        # The values passed the layout; fill the frozen instance directly (no per-field __setattr__).
        message = object.__new__(cls)
        message.__dict__.update(zip(cls._codec()[1], values))
        return message


@dataclass(frozen=True)
class Hello(Message):
    TYPE = 0x01
    LAYOUT = struct.Struct("<HHHH32sI")
    major: int
    minor: int
    max_inflight: int
    serial_raw: bytes
    partition: int
    channel: int = Channel.PCIE  # bytes 6-7, after max_inflight on the wire

    def encode_parts(self) -> tuple[bytes, bytes | bytearray]:
        return self.LAYOUT.pack(self.major, self.minor, self.max_inflight, self.channel, self.serial_raw,
                                self.partition), b""

    @classmethod
    def decode_parts(cls, fixed: bytes | bytearray, rest: bytes | bytearray) -> Hello:
        if rest:
            raise LinkError(f"Hello: {len(rest)} trailing bytes")
        major, minor, max_inflight, channel, serial_raw, partition = cls.LAYOUT.unpack(fixed)
        return cls(major, minor, max_inflight, serial_raw, partition, channel)

    @property
    def serial(self) -> str:
        return self.serial_raw.rstrip(b"\0").decode("ascii", "replace")

    @classmethod
    def make(cls, serial: str, partition: int = 0, max_inflight: int = 64,
             channel: Channel = Channel.PCIE) -> Hello:
        return cls(VERSION, MINOR, max_inflight, serial.encode("ascii")[:32].ljust(32, b"\0"), partition,
                   channel)


@dataclass(frozen=True)
class HelloAck(Message):
    TYPE = 0x81
    LAYOUT = struct.Struct("<HHHH")
    major: int
    minor: int
    credits: int
    result: int

    ACCEPTED: ClassVar[int] = 0
    VERSION_UNSUPPORTED: ClassVar[int] = 1
    BUSY: ClassVar[int] = 2
    ROOT_OF_TRUST_FAILURE: ClassVar[int] = 3
    STATE_UNUSABLE: ClassVar[int] = 4
    INVALID_DEVICE: ClassVar[int] = 5


@dataclass(frozen=True)
class Request(Message):
    TYPE = 0x02
    LAYOUT = struct.Struct("<HHHBxHxxII")
    HAS_PAYLOAD = True
    qid: int
    cid: int
    opc: int
    session_flags: int
    session_id: int
    dst_len: int
    payload: bytes = field(default=b"")

    @property
    def flags(self) -> SessionFlags:
        return SessionFlags.from_byte(self.session_flags)


@dataclass(frozen=True)
class Response(Message):
    TYPE = 0x82
    LAYOUT = struct.Struct("<HBBHxxI")
    HAS_PAYLOAD = True
    status: int
    session_flags: int
    short_app_id: int
    session_id: int
    payload: bytes = field(default=b"")


@dataclass(frozen=True)
class Reset(Message):
    TYPE = 0x03
    LAYOUT = struct.Struct("<I")
    kind: int


@dataclass(frozen=True)
class ResetAck(Message):
    TYPE = 0x83
    LAYOUT = struct.Struct("<I")
    kind: int


@dataclass(frozen=True)
class Cancel(Message):
    TYPE = 0x04
    LAYOUT = struct.Struct("<I")
    msg_id: int


@dataclass(frozen=True)
class MailboxPacket(Message):
    """One packet the host committed to the serial mailbox, and the 7-bit bus address it was sent to."""

    TYPE = 0x05
    LAYOUT = struct.Struct("<BxxxI")
    HAS_PAYLOAD = True
    address: int
    payload: bytes = field(default=b"")


@dataclass(frozen=True)
class MailboxAnswer(Message):
    """Backend to serial mailbox: a packet for the host (may be empty), a status (0, or why the host's
    packet was dropped) and flags (bit 0 END: the last answer to the MailboxPacket with this msg_id)."""

    TYPE = 0x85
    LAYOUT = struct.Struct("<BBxxI")
    HAS_PAYLOAD = True
    status: int
    flags: int
    payload: bytes = field(default=b"")

    END: ClassVar[int] = 1


class AesCipher(enum.IntEnum):
    GCM = 0
    XTS = 1


@dataclass(frozen=True)
class AesRequest(Message):
    """One AES-queue command, parsed by the device (docs/link-protocol.md, "AES fast path"). ``data`` is
    the source gathered from the SGL followed by the GCM tail buffer's bytes; ``dst_len`` is what the
    destination holds (SGL plus tail buffer)."""

    TYPE = 0x06
    LAYOUT = struct.Struct("<BBBBHHHBxIIII16s12sIII")
    BODY_LIMIT: ClassVar[int] = MAX_AES_BODY
    HAS_PAYLOAD = True
    PAYLOAD_LIMIT = MAX_AES_DATA
    version: int
    cipher: int
    decrypt: int
    dul: int
    qid: int
    cid: int
    session_id: int
    short_app_id: int
    key_id1: int
    key_id2: int
    aad_len: int
    aligned_aad_len: int
    tag_or_tweak: bytes
    iv: bytes
    src_tail_len: int
    dst_len: int
    data: bytes | bytearray = field(default=b"")   # bytearray when read from a socket in one large piece


@dataclass(frozen=True)
class AesResponse(Message):
    """The answer to an AesRequest: CQE status and err, GCM tag and IV, FIPS flag, and the output bytes
    for the destination starting at ``dst_offset`` (docs/link-protocol.md, "AES fast path")."""

    TYPE = 0x86
    LAYOUT = struct.Struct("<BBHHxx16s12sII")
    BODY_LIMIT: ClassVar[int] = MAX_AES_BODY
    HAS_PAYLOAD = True
    PAYLOAD_LIMIT = MAX_AES_DATA
    version: int
    fips_approved: int
    status: int
    err: int
    tag: bytes
    iv: bytes
    dst_offset: int
    data: bytes | bytearray = field(default=b"")   # bytearray when read from a socket in one large piece

    @classmethod
    def failure(cls, status: int, err: int = 0) -> AesResponse:
        return cls(AES_BODY_VERSION, 0, status, err if err else status, bytes(16), bytes(12), 0, b"")


class LmContextStatus(enum.IntEnum):
    """Why a backend gave or took no migration context (docs/link-protocol.md, "Migration context")."""

    OK = 0
    NO_MIGRATION_KEY = 1     # this backend holds no fleet migration key
    NOT_AUTHENTIC = 2        # the context does not authenticate under this backend's key (or was altered)
    REPLAYED = 3             # not newer than the last context accepted from that source partition
    MALFORMED = 4            # bad body or context format, unknown layout version, oversize
    UNAVAILABLE = 5          # the partition could not export or store it (backend log says why)


@dataclass(frozen=True)
class LmContextGet(Message):
    """Device to backend, at a migration's source: the partition's migration context, please."""

    TYPE = 0x07
    LAYOUT = struct.Struct("<Bxxx")
    version: int = LM_BODY_VERSION


@dataclass(frozen=True)
class LmContext(Message):
    """Backend to device: the sealed context (status OK) or a refusal with an empty context."""

    TYPE = 0x87
    LAYOUT = struct.Struct("<BxHI")
    HAS_PAYLOAD = True
    PAYLOAD_LIMIT = MAX_LM_CONTEXT
    version: int
    status: int
    context: bytes = field(default=b"")


@dataclass(frozen=True)
class LmContextSet(Message):
    """Device to backend, at a migration's destination before its NSSR: the context from the stream."""

    TYPE = 0x08
    LAYOUT = struct.Struct("<BxxxI")
    HAS_PAYLOAD = True
    PAYLOAD_LIMIT = MAX_LM_CONTEXT
    version: int
    context: bytes = field(default=b"")


@dataclass(frozen=True)
class LmContextSetAck(Message):
    """Backend to device: whether the partition took the context (``LmContextStatus``)."""

    TYPE = 0x88
    LAYOUT = struct.Struct("<BxH")
    version: int
    status: int


MESSAGES: dict[int, type[Message]] = {
    m.TYPE: m for m in (Hello, HelloAck, Request, Response, Reset, ResetAck, Cancel, MailboxPacket,
                        MailboxAnswer, AesRequest, AesResponse, LmContextGet, LmContext, LmContextSet,
                        LmContextSetAck)
}


class Status(enum.IntEnum):
    """CQE status values of the link and device (docs/link-protocol.md)."""

    SUCCESS = 0x000
    INVALID_OPCODE = 0x001
    INVALID_FIELD = 0x002
    DATA_TRANSFER_ERROR = 0x004
    INTERNAL_ERROR = 0x006
    ABORTED_SQ_DELETED = 0x008
    CQ_INVALID = 0x100
    INVALID_QUEUE_ID = 0x101
    INVALID_QUEUE_SIZE = 0x102
    INVALID_VECTOR = 0x108
    INVALID_QUEUE_DELETION = 0x10C
    BACKEND_UNAVAILABLE = 0x701
    BACKEND_TIMEOUT = 0x702
    BACKEND_PROTOCOL_ERROR = 0x703
    NOT_SUPPORTED = 0x704
    SESSION_KIND_MISMATCH = 0x710
    SESSION_ID_MISMATCH = 0x711
    REQUEST_REJECTED = 0x712
    SGL_DESCRIPTOR_COUNT_INVALID = 0x00E
    SGL_DATA_LENGTH_INVALID = 0x00F
    SGL_DESCRIPTOR_TYPE_INVALID = 0x011
    SGL_SUBTYPE_INVALID = 0x016
    AES_REFUSED = 0x720  # the HSM refused an AES command: CQE err holds the DDI status (low 16 bits)


COPY_LIMIT = 1 << 16   # payloads from this size on are written from their own buffer (frame_pieces)


def _head(msg_id: int, message: Message) -> tuple[bytes, bytes | bytearray]:
    """The frame header with the body's fixed fields, and the payload."""
    fixed, payload = message.encode_parts()
    return HEADER.pack(MAGIC, VERSION, message.TYPE, 0, msg_id, len(fixed) + len(payload)) + fixed, payload


def encode_frame(msg_id: int, message: Message) -> bytes:
    head, payload = _head(msg_id, message)
    return head + payload


def frame_pieces(msg_id: int, message: Message) -> list[bytes | bytearray | memoryview]:
    """A frame as the pieces to write in order: the whole frame in one copy, or, for a payload of
    ``COPY_LIMIT`` bytes or more, the header and then the payload's own buffer (not copied)."""
    head, payload = _head(msg_id, message)
    return [head + payload] if len(payload) < COPY_LIMIT else [head, payload]


def write_some(sock: socket.socket, pieces: list[bytes | bytearray | memoryview],
               flags: int = 0) -> list[bytes | bytearray | memoryview]:
    """One system call writing the start of ``pieces``; what of them the socket did not take."""
    if len(pieces) == 1:
        sent = sock.send(pieces[0], flags)
        return [] if sent == len(pieces[0]) else [memoryview(pieces[0])[sent:]]
    sent = sock.sendmsg(pieces, [], flags)
    for i, piece in enumerate(pieces):
        if sent < len(piece):
            return [memoryview(piece)[sent:], *pieces[i + 1:]]
        sent -= len(piece)
    return []


def send_frame(sock: socket.socket, msg_id: int, message: Message) -> None:
    """Write one frame to ``sock`` (blocking until it took all of it), in ``frame_pieces``."""
    for piece in write_some(sock, frame_pieces(msg_id, message)):
        sock.sendall(piece)


def decode_header(header: bytes | bytearray) -> tuple[type[Message], int, int]:
    """Check a 16-byte frame header; return (message class, msg_id, body length)."""
    magic, version, kind, flags, msg_id, body_len = HEADER.unpack(header)
    if magic != MAGIC:
        raise LinkError(f"bad magic {magic!r}")
    if version != VERSION:
        raise LinkError(f"unsupported link version {version}")
    if flags:
        raise LinkError(f"nonzero frame flags 0x{flags:x}")
    if kind not in MESSAGES:
        raise LinkError(f"unknown message type 0x{kind:02x}")
    limit = getattr(MESSAGES[kind], "BODY_LIMIT", MAX_BODY)
    if body_len > limit:
        raise LinkError(f"body of {body_len} bytes exceeds {limit}")
    return MESSAGES[kind], msg_id, body_len


def decode_frame(frame: bytes) -> tuple[int, Message]:
    """Decode one complete frame held in memory."""
    cls, msg_id, body_len = decode_header(frame[:HEADER.size])
    body = frame[HEADER.size:]
    if len(body) != body_len:
        raise LinkError(f"frame body is {len(body)} bytes, header says {body_len}")
    return msg_id, cls.decode_body(body)


def read_frame(read: Callable[[int], bytes | bytearray]) -> tuple[int, Message]:
    """Read one frame with ``read(n)``, which returns ``n`` bytes (fewer only at the end of the stream);
    raises ``EOFError`` at the end, ``LinkError`` for a malformed frame."""
    header = read(HEADER.size)
    if len(header) < HEADER.size:
        raise EOFError("end of stream")
    cls, msg_id, body_len = decode_header(header)
    fixed = read(min(body_len, cls.LAYOUT.size))
    rest = read(body_len - len(fixed)) if body_len > len(fixed) else b""
    if len(fixed) + len(rest) < body_len:
        raise EOFError("end of stream inside a frame")
    if len(fixed) < cls.LAYOUT.size:
        raise LinkError(f"{cls.__name__}: body of {body_len} bytes is shorter than {cls.LAYOUT.size}")
    return msg_id, cls.decode_parts(fixed, rest)


class SocketReader:
    """``read(n)`` for ``read_frame`` over a stream socket, through one receive buffer: frames sent back
    to back arrive in one ``recv`` instead of two each (header, body). Socket errors and timeouts
    propagate."""

    BUFFER = 1 << 18

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray(self.BUFFER)
        self._view = memoryview(self._buf)
        self._start = self._end = 0

    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return self._end - self._start

    def read(self, n: int) -> bytes | bytearray:
        """``n`` bytes; fewer only if the peer closed the stream. A read larger than the buffer is
        received straight into a ``bytearray`` of its own, which is returned."""
        start = self._start
        if self._end - start >= n:
            self._start = start + n
            return bytes(self._view[start:start + n])
        if n > self.BUFFER:
            return self._read_large(n)
        if self._end + (n - (self._end - start)) > self.BUFFER:   # no room behind: move the rest to the front
            self._buf[:self._end - start] = bytes(self._view[start:self._end])
            self._start, self._end = 0, self._end - start
        while self._end - self._start < n:
            got = self._sock.recv_into(self._view[self._end:])
            if not got:
                n = self._end - self._start
                break
            self._end += got
        start = self._start
        self._start = start + n
        return bytes(self._view[start:start + n])

    def _read_large(self, n: int) -> bytearray:
        have = self._end - self._start
        out = bytearray(n)
        with memoryview(out) as view:
            view[:have] = self._view[self._start:self._end]
            self._start = self._end = 0
            while have < n:
                got = self._sock.recv_into(view[have:])
                if not got:
                    break
                have += got
        del out[have:]
        return out
