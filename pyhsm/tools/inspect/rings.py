"""The driver's submission and completion rings, decoded straight out of guest-physical memory.

Queue bases, sizes, heads, tails and in-flight counts come from the device: its QOM property
``queues``, a list of objects whose schema is in docs/device.md (*Properties*), read with
``pyhsm.tools.qmp.device_state``. Entry sizes follow the queue's ``format`` (``pyhsm.protocol.layout``). A
submission between head and tail has not been fetched by the device yet; a fetched one with no
completion after it is in flight (a hung command shows up there, with its MBOR request decoded from
its source pages).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pyhsm.protocol import layout
from pyhsm.protocol.ddi.decode import decode_request
from pyhsm.protocol.link import SessionFlags
from pyhsm.tools.inspect.memory import PhysicalMemory, UnmappedAddress

AES_FIRST_QID = layout.AES_FIRST_QID
PAGE = 4096
ENTRY_SIZES = {   # the device's queue ``format`` -> (SQE size, CQE size)
    "admin": (layout.AdminSqe.LAYOUT.size, layout.AdminCqe.LAYOUT.size),
    "hsm": (layout.HsmSqe.LAYOUT.size, layout.HsmCqe.LAYOUT.size),
    "aes": (layout.AesSqe.LAYOUT.size, layout.AesCqe.LAYOUT.size),
}


@dataclass(frozen=True)
class Queue:
    kind: str            # "sq" or "cq"
    qid: int
    base: int
    size: int
    head: int
    tail: int
    extra: dict[str, Any]   # every other field: format; cq: phase, ien, vector, held; sq: cqid, inflight

    @property
    def entry_size(self) -> int:
        sqe, cqe = ENTRY_SIZES[self.extra["format"]]
        return sqe if self.kind == "sq" else cqe


def load_queues(items: Any) -> list[Queue]:
    """The device's ``queues`` property as ``qom-get`` returns it: a list of objects (docs/device.md,
    *Properties*). Raises ``ValueError`` for anything else, such as the text of an older device."""
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError("the device's queues property is not a list of queue objects: this QEMU "
                         "or device-state file predates the structured property (make qemu)")
    return [Queue(item["kind"], item["qid"], item["base"], item["size"], item["head"], item["tail"],
                  {k: v for k, v in item.items()
                   if k not in ("kind", "qid", "base", "size", "head", "tail")})
            for item in items]


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
    if qid >= AES_FIRST_QID:
        return {"raw": raw.hex()}
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


def decode_rings(memory: PhysicalMemory, queues: list[Queue]) -> list[dict[str, Any]]:
    """Per queue: its state and its used entries, oldest first; SQ entries carry ``state``
    (``submitted``: not fetched yet; ``in flight``: among the last ``inflight`` fetched commands of
    that HSM SQ, the device's count of its commands waiting for the backend, which answers in order;
    ``done``) and, on HSM queues, the decoded request. AES entries are shown raw."""
    out = []
    for q in sorted(queues, key=lambda q: (q.kind != "cq", q.qid)):
        entry = {"kind": q.kind, "qid": q.qid, "base": hex(q.base), "size": q.size,
                 "head": q.head, "tail": q.tail, **q.extra, "entries": []}
        if q.kind == "cq":
            for slot in _oldest_first(q):
                raw = memory.read(q.base + slot * q.entry_size, q.entry_size)
                if not any(raw):   # never written (a written HSM CQE carries its SQ id, never 0)
                    continue       # (phase, CID and status can all be 0 on an even lap)
                cqe = decode_cqe(q.qid, raw)
                cqe["slot"] = slot
                entry["entries"].append(cqe)
        else:
            pending = {(q.head + i) % q.size for i in range((q.tail - q.head) % q.size)}
            inflight = q.extra["inflight"]
            for slot in _oldest_first(q):
                raw = memory.read(q.base + slot * q.entry_size, q.entry_size)
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
