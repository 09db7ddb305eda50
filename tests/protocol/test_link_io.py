"""Link frames over a socket: ``link.SocketReader`` (the receive buffer under ``read_frame``) and
``link.send_frame``, on both ends of the link."""

from __future__ import annotations

import socket
import threading

import pytest

from pyhsm.protocol import link


def _pair() -> tuple[socket.socket, link.SocketReader]:
    sender, receiver = socket.socketpair()
    receiver.settimeout(5)
    return sender, link.SocketReader(receiver)


def _request(msg_id: int, payload: bytes = b"x") -> bytes:
    return link.encode_frame(msg_id, link.Request(1, msg_id, 0, 0, 0, 8192, payload))


class CountingSocket:
    """A socket whose ``recv_into`` calls are counted."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.receives = 0

    def recv_into(self, view: memoryview) -> int:
        self.receives += 1
        return self.sock.recv_into(view)


def test_frames_sent_together_are_read_from_one_receive():
    sender, receiver = socket.socketpair()
    counted = CountingSocket(receiver)
    reader = link.SocketReader(counted)  # type: ignore[arg-type]
    sender.sendall(b"".join(_request(i) for i in range(3)))
    assert [link.read_frame(reader.read)[0] for _ in range(3)] == [0, 1, 2]
    assert counted.receives == 1


def test_a_frame_split_across_writes_is_read_whole():
    sender, reader = _pair()
    frame = _request(7, b"split across writes")
    sender.sendall(_request(6) + frame[:20])
    assert link.read_frame(reader.read)[0] == 6
    later = threading.Timer(0.2, sender.sendall, (frame[20:],))
    later.start()
    assert link.read_frame(reader.read) == link.decode_frame(frame)
    later.join()


def test_frames_straddling_the_end_of_the_buffer_and_larger_than_it_arrive_whole():
    sender, reader = _pair()
    small = _request(1, bytes(range(256)) * 30)           # 7,680 bytes of payload
    big = link.AesResponse(1, 1, 0, 0, bytes(16), bytes(12), 0, bytes(range(251)) * 4177)  # 1 MiB+, > the buffer
    assert len(link.encode_frame(2, big)) > link.SocketReader.BUFFER
    stream = small * 40 + link.encode_frame(2, big) + small
    writer = threading.Thread(target=sender.sendall, args=(stream,))
    writer.start()
    for _ in range(40):
        assert link.read_frame(reader.read) == link.decode_frame(small)
    assert link.read_frame(reader.read) == (2, big)
    assert link.read_frame(reader.read) == link.decode_frame(small)
    writer.join()


def test_the_end_of_the_stream_inside_a_frame_is_a_short_read():
    sender, reader = _pair()
    sender.sendall(_request(1)[:30])
    sender.close()
    with pytest.raises(EOFError, match="inside a frame"):
        link.read_frame(reader.read)
    with pytest.raises(EOFError, match="end of stream"):
        link.read_frame(reader.read)


def test_timeouts_propagate():
    _, reader = _pair()
    reader._sock.settimeout(0.05)
    with pytest.raises(TimeoutError):
        reader.read(16)


@pytest.mark.parametrize("size", [0, 100, link.COPY_LIMIT - 1, link.COPY_LIMIT, link.MAX_AES_DATA])
def test_send_frame_writes_small_and_large_payloads_whole(size):
    sender, reader = _pair()
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)   # large ones go out in many pieces
    message = link.AesResponse(1, 1, 0, 0, bytes(range(16)), bytes(12), 0, bytes(range(256)) * (size // 256)
                               + bytes(size % 256))
    writer = threading.Thread(target=link.send_frame, args=(sender, 77, message))
    writer.start()
    assert link.read_frame(reader.read) == (77, message)
    writer.join()
    assert link.encode_frame(77, message) == link.HEADER.pack(link.MAGIC, link.VERSION, message.TYPE, 0, 77,
                                                              len(message.encode_body())) + message.encode_body()
