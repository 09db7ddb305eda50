"""The driver's submission and completion rings, decoded straight out of guest-physical memory.

Queue bases, sizes, heads and tails come from the device (QOM property ``queues``, see
``pyhsm.qmp.device_state``). Entry layouts: azihsm-device.md 3.4-3.7. A submission between head and
tail has not been fetched by the device yet; a fetched one with no completion after it is in flight
(a hung command shows up there, with its MBOR request decoded from its source pages).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

from pyhsm.inspect.memory import UnmappedAddress, PhysicalMemory
from pyhsm.link import SessionFlags
from pyhsm.trace.decode import decode_request

SQE_SIZE, CQE_SIZE = 64, 16
AES_FIRST_QID = 256
PAGE = 4096
_QUEUE_LINE = re.compile(r"^(sq|cq) (\d+): (.*)$")


@dataclass(frozen=True)
class Queue:
    kind: str            # "sq" or "cq"
    qid: int
    base: int
    size: int
    head: int
    tail: int
    extra: dict[str, int]   # cq: phase, vector, held; sq: cq


def parse_queues(text: str) -> list[Queue]:
    """The device's ``queues`` property (``sq 1: base=0x... size=64 head=3 tail=3 cq=1`` lines)."""
    queues = []
    for line in text.splitlines():
        match = _QUEUE_LINE.match(line.strip())
        if not match:
            continue
        fields = {k: int(v, 0) for k, v in (item.split("=") for item in match[3].split())}
        queues.append(Queue(match[1], int(match[2]), fields.pop("base"), fields.pop("size"),
                            fields.pop("head"), fields.pop("tail"), fields))
    return queues


def decode_sqe(qid: int, raw: bytes) -> dict[str, Any]:
    if qid == 0:
        opcode, cid = raw[0], struct.unpack_from("<H", raw, 2)[0]
        prp1, = struct.unpack_from("<Q", raw, 24)
        dw10, dw11 = struct.unpack_from("<II", raw, 40)
        return {"opcode": opcode, "cid": cid, "prp1": prp1, "dw10": dw10, "dw11": dw11}
    if qid >= AES_FIRST_QID:
        return {"raw": raw.hex()}
    dw0, src_len, src1, src2, dst_len = struct.unpack_from("<IIQQI", raw, 0)
    dst1, dst2 = struct.unpack_from("<QQ", raw, 28)
    flags, session_id = raw[44], struct.unpack_from("<H", raw, 48)[0]
    return {"opc": dw0 & 0x3FF, "cid": dw0 >> 16, "src_len": src_len, "src_prp": [src1, src2],
            "dst_len": dst_len, "dst_prp": [dst1, dst2],
            "session_op": SessionFlags.from_byte(flags).op.name, "session_id": session_id}


def decode_cqe(qid: int, raw: bytes) -> dict[str, Any]:
    sq_head, sq_id, cid, status_phase = struct.unpack_from("<HHHH", raw, 8)
    out: dict[str, Any] = {"cid": cid, "sq_id": sq_id, "sq_head": sq_head,
                           "status": (status_phase >> 1) & 0x7FF, "phase": status_phase & 1}
    if qid == 0:
        out["dw0"] = struct.unpack_from("<I", raw, 0)[0]
    else:
        out.update(byte_count=struct.unpack_from("<H", raw, 0)[0],
                   session_op=SessionFlags.from_byte(raw[2]).op.name,
                   session_id=struct.unpack_from("<H", raw, 4)[0])
    return out


def _request(memory: PhysicalMemory, sqe: dict[str, Any]) -> dict[str, Any]:
    """The MBOR request a HSM SQE points at, decoded (secrets redacted)."""
    length = min(sqe["src_len"], 2 * PAGE)
    if not length:
        return {}
    try:
        data = memory.read(sqe["src_prp"][0], min(length, PAGE))
        if length > PAGE:
            data += memory.read(sqe["src_prp"][1], length - PAGE)
    except UnmappedAddress as exc:
        return {"unreadable": str(exc)}
    return decode_request(data)


def decode_rings(memory: PhysicalMemory, queues: list[Queue], inflight: int = 0) -> list[dict[str, Any]]:
    """Per queue: its state and its used entries, oldest first; SQ entries carry ``state``
    (``submitted``: not fetched yet; ``in flight``: among the last ``inflight`` fetched HSM commands,
    the device's count of commands waiting for the backend, which answers in order; ``done``) and,
    on HSM queues, the decoded request. With several busy HSM queues ``in flight`` is an upper bound."""
    out = []
    for q in sorted(queues, key=lambda q: (q.kind != "cq", q.qid)):
        entry = {"kind": q.kind, "qid": q.qid, "base": hex(q.base), "size": q.size,
                 "head": q.head, "tail": q.tail, **q.extra, "entries": []}
        if q.kind == "cq":
            for slot in _oldest_first(q):
                raw = memory.read(q.base + slot * CQE_SIZE, CQE_SIZE)
                if not any(raw):   # never written (a written HSM CQE carries its SQ id, never 0)
                    continue       # (phase, CID and status can all be 0 on an even lap)
                cqe = decode_cqe(q.qid, raw)
                cqe["slot"] = slot
                entry["entries"].append(cqe)
        else:
            pending = {(q.head + i) % q.size for i in range((q.tail - q.head) % q.size)}
            for slot in _oldest_first(q):
                raw = memory.read(q.base + slot * SQE_SIZE, SQE_SIZE)
                if not any(raw):
                    continue
                sqe = decode_sqe(q.qid, raw)
                sqe["slot"] = slot
                fetched_ago = (q.head - slot) % q.size   # 1 = the last command the device fetched
                if slot in pending:
                    sqe["state"] = "submitted"
                elif 0 < q.qid < AES_FIRST_QID and 0 < fetched_ago <= inflight:
                    sqe["state"] = "in flight"
                else:
                    sqe["state"] = "done"
                if 0 < q.qid < AES_FIRST_QID and sqe["state"] != "done":   # done: pages reused
                    sqe["request"] = _request(memory, sqe)
                entry["entries"].append(sqe)
        out.append(entry)
    return out


def _oldest_first(q: Queue) -> list[int]:
    """Slots in ring order starting after the producer's position (the oldest entry)."""
    return [(q.tail + i) % q.size for i in range(q.size)]
