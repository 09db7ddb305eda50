"""An in-memory stand-in for ``pyhsm.client.serialbus.mailbox.Mailbox``, straight into an ``Endpoint``."""

from __future__ import annotations

from collections import deque

from pyhsm.backend.serialbus.endpoint import Endpoint

ADDRESS = 0x41


class LoopbackMailbox:
    """``Mailbox``'s send/receive straight into an ``Endpoint`` (no QEMU): the last drop status is kept."""

    def __init__(self, endpoint: Endpoint, address: int = ADDRESS) -> None:
        self.endpoint = endpoint
        self.address = address
        self.queue: deque[bytes] = deque()
        self.drops: list[int] = []

    def send(self, packet: bytes) -> None:
        answer = self.endpoint.handle(self.address, packet)
        self.queue.extend(answer.packets)
        if answer.status:
            self.drops.append(answer.status)

    def receive(self, timeout_s: float) -> bytes:
        if not self.queue:
            raise TimeoutError("nothing queued")
        return self.queue.popleft()
