"""Client for QEMU's qtest text protocol (system/qtest.c): one request line, one answer line.

QEMU may interleave asynchronous ``IRQ raise N`` / ``IRQ lower N`` lines before an answer; they are
collected in ``irq_events``. Every method raises ``QtestError`` on a ``FAIL``/``ERR`` answer and
``OSError`` (``ConnectionError``) when QEMU has gone away.
"""

from __future__ import annotations

import socket


class QtestError(Exception):
    """QEMU answered a qtest command with FAIL or ERR."""


class Qtest:
    """A connected qtest channel. Not thread safe: one caller at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")
        self.irq_events: list[str] = []

    def command(self, line: str) -> list[str]:
        """Send one command; return the words after ``OK``."""
        self._sock.sendall(line.encode("ascii") + b"\n")
        while True:
            answer = self._reader.readline()
            if not answer:
                raise ConnectionResetError(f"QEMU closed the qtest channel (during {line.split()[0]!r})")
            words = answer.decode("ascii", "replace").split()
            if words[:1] == ["IRQ"]:
                self.irq_events.append(" ".join(words[1:]))
                continue
            if words[:1] == ["OK"]:
                return words[1:]
            raise QtestError(f"{line!r}: {' '.join(words)}")

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    # Port I/O
    def outb(self, port: int, value: int) -> None:
        self.command(f"outb 0x{port:x} 0x{value:x}")

    def outl(self, port: int, value: int) -> None:
        self.command(f"outl 0x{port:x} 0x{value:x}")

    def inl(self, port: int) -> int:
        return int(self.command(f"inl 0x{port:x}")[0], 0)

    def inb(self, port: int) -> int:
        return int(self.command(f"inb 0x{port:x}")[0], 0)

    # Memory-mapped accesses of one width (MMIO or RAM)
    def readb(self, addr: int) -> int:
        return int(self.command(f"readb 0x{addr:x}")[0], 0)

    def readw(self, addr: int) -> int:
        return int(self.command(f"readw 0x{addr:x}")[0], 0)

    def readl(self, addr: int) -> int:
        return int(self.command(f"readl 0x{addr:x}")[0], 0)

    def readq(self, addr: int) -> int:
        return int(self.command(f"readq 0x{addr:x}")[0], 0)

    def writeb(self, addr: int, value: int) -> None:
        self.command(f"writeb 0x{addr:x} 0x{value:x}")

    def writew(self, addr: int, value: int) -> None:
        self.command(f"writew 0x{addr:x} 0x{value:x}")

    def writel(self, addr: int, value: int) -> None:
        self.command(f"writel 0x{addr:x} 0x{value:x}")

    def writeq(self, addr: int, value: int) -> None:
        self.command(f"writeq 0x{addr:x} 0x{value:x}")

    # Byte strings
    def read(self, addr: int, size: int) -> bytes:
        if size == 0:
            return b""
        return bytes.fromhex(self.command(f"read 0x{addr:x} {size}")[0][2:])

    def write(self, addr: int, data: bytes) -> None:
        if data:
            self.command(f"write 0x{addr:x} {len(data)} 0x{data.hex()}")

    def memset(self, addr: int, size: int, value: int = 0) -> None:
        self.command(f"memset 0x{addr:x} {size} 0x{value:x}")

    # Virtual clock
    def clock_step(self, ns: int | None = None) -> int:
        """Advance QEMU_CLOCK_VIRTUAL by ``ns`` (or to the next deadline); return the new time."""
        return int(self.command("clock_step" if ns is None else f"clock_step {ns}")[0])
