"""The backend side of a serial-mailbox connection (docs/link-protocol.md, channel 1).

Each MAILBOX_PACKET goes to the device's ``Endpoint`` in arrival order, on the connection's thread;
its answer packets go back as MAILBOX_ANSWER frames with the packet's msg_id, the last one marked END
(an empty END frame when there is nothing to send, with the drop reason as status when the packet was
dropped). RESET kind 3 (device reset) and 4 (mailbox abort) restart message assembly and the SPDM
connection; kind 3 also forgets the assigned EID.
"""

from __future__ import annotations

import logging
import socket
from typing import Callable

from pyhsm.backend.serialbus.endpoint import Endpoint
from pyhsm.protocol import link

log = logging.getLogger("pyhsm.backend.serialbus")


def answer_frames(msg_id: int, endpoint: Endpoint, address: int, packet: bytes) -> bytes:
    """The MAILBOX_ANSWER frames for one host packet, END on the last."""
    answer = endpoint.handle(address, packet)
    packets = list(answer.packets) or [b""]
    frames = [link.MailboxAnswer(0, 0, p) for p in packets[:-1]]
    frames.append(link.MailboxAnswer(answer.status, link.MailboxAnswer.END, packets[-1]))
    return b"".join(link.encode_frame(msg_id, f) for f in frames)


def serve_mailbox(endpoint: Endpoint, conn: socket.socket,
                  read_frame: Callable[[], tuple[int, link.Message]]) -> None:
    """Serve one connection until ``read_frame`` raises (end of stream, or ``link.LinkError`` for a frame
    a serial mailbox never sends)."""
    while True:
        msg_id, message = read_frame()
        match message:
            case link.MailboxPacket(address=address, payload=packet):
                conn.sendall(answer_frames(msg_id, endpoint, address, packet))
            case link.Reset(kind=link.ResetKind.FUNCTION | link.ResetKind.MAILBOX as kind):
                if kind == link.ResetKind.FUNCTION:
                    endpoint.power_cycle()
                else:
                    endpoint.reset()
                log.info("serial mailbox %s: reset kind %d", endpoint.serial, kind)
                conn.sendall(link.encode_frame(msg_id, link.ResetAck(kind)))
            case _:
                raise link.LinkError(f"unexpected {type(message).__name__} on a serial mailbox")
