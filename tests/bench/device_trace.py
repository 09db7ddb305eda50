"""The device's share of a guest command, from QEMU's trace events (``--profile`` of the guest benches).

QEMU writes four of the azihsm device's trace events with timestamps: the SQ doorbell, link frames sent
and received, and the MSI-X. ``split`` pairs them per command and gives the median time of each part:
the device from the doorbell to the request frame sent, the link and backend (request to response
frame), and the device from the response to the interrupt. Commands must be one at a time on the
queues that are counted, as the guest benches issue them.
"""

from __future__ import annotations

import re
import statistics
from pathlib import Path

TRACED = ("azihsm_doorbell_sq", "azihsm_link_tx", "azihsm_link_rx", "azihsm_irq")
_LINE = re.compile(r"^\d+@(\d+\.\d+):(\w+) (.*)$")
PARTS = ("device_in_us", "link_backend_us", "device_out_us")


def qemu_args(path: Path) -> tuple[str, ...]:
    """QEMU arguments that write TRACED, with timestamps, to ``path``."""
    args: list[str] = []
    for event in TRACED:
        args += ["-trace", f"enable={event}" + (f",file={path}" if event == TRACED[-1] else "")]
    return (*args, "-msg", "timestamp=on")


def split(path: Path, request_type: int, aes_queues: bool, body_len: int | None = None) -> dict[str, float]:
    """Median microseconds of PARTS over the commands rung on the AES queues (``aes_queues``) or the
    HSM queues, whose request frame has type ``request_type`` (its answer: ``request_type | 0x80``)
    and, if given, a body of ``body_len`` bytes; ``{}`` if the trace holds none."""
    rows: list[tuple[float, float, float]] = []
    doorbell = None
    sent: dict[int, tuple[float, float]] = {}
    answered: tuple[float, float, float] | None = None
    tx, rx = f"0x{request_type:02x}", f"0x{request_type | 0x80:02x}"
    for line in path.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        t, name, args = float(m.group(1)), m.group(2), m.group(3).split()
        if name == "azihsm_doorbell_sq" and 0 < int(args[1]) and (int(args[1]) >= 256) == aes_queues:
            doorbell = t
        elif (name == "azihsm_link_tx" and args[2] == tx and doorbell is not None
              and (body_len is None or int(args[6]) == body_len)):
            sent[int(args[4])] = (doorbell, t)
            doorbell = None
        elif name == "azihsm_link_rx" and args[2] == rx and int(args[4]) in sent:
            answered = (*sent.pop(int(args[4])), t)
        elif name == "azihsm_irq" and answered:
            db, sent_at, got = answered
            rows.append((sent_at - db, got - sent_at, t - got))
            answered = None
    if not rows:
        return {}
    return {"commands": len(rows), **{k: round(statistics.median(r[i] for r in rows) * 1e6, 1)
                                      for i, k in enumerate(PARTS)}}
