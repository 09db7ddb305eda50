"""The one interface every path to an HSM offers the client library.

A transport carries one HSM-queue command (opcode, session side band, MBOR request) and returns its
completion. Implementations: the backend socket (``pyhsm.client.socket_transport``), the
qtest-driven device (``pyhsm.testing.qtest.transport``) and the guest's ioctl (``pyhsm.client.ioctl_transport``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pyhsm.protocol.link import SessionFlags

MAX_BUFFER = 8192


@dataclass(frozen=True)
class Completion:
    """What came back for one command: CQE status, side band and the response bytes."""

    status: int
    flags: SessionFlags
    session_id: int
    short_app_id: int
    payload: bytes


class Transport(Protocol):
    def submit(self, request: bytes, flags: SessionFlags, session_id: int = 0, *,
               opc: int = 0, dst_len: int = MAX_BUFFER) -> Completion:
        """Send one command and wait for its completion. Raises ``OSError`` if the path is broken."""
        ...

    def close(self) -> None:
        """Release the path; sessions opened through it are flushed by the device or driver."""
        ...
