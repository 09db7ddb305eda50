"""The device's side of the trace: QEMU ``azihsm_*`` trace events (log backend) as trace records.

QEMU writes each event as ``[PID@SEC.USEC:]NAME FORMATTED-ARGS`` (the time prefix with
``-msg timestamp=on``) to stderr or the ``-D`` file. The line formats are read from
``qemu-device/trace-events`` (the device's own declaration), so this parser and the device cannot
disagree. Submissions and completions are paired by (queue, cid) into ``command`` and ``admin``
records with their latency; other events pass through as ``device`` records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Iterator

from pyhsm import paths
from pyhsm.protocol.link import SessionOp

ADMIN_OPCODES = {0x00: "DeleteSq", 0x01: "CreateSq", 0x04: "DeleteCq", 0x05: "CreateCq",
                 0x06: "Identify", 0x08: "Abort", 0x09: "SetFeatures", 0x0A: "GetFeatures",
                 0xC3: "SetResCnt", 0xC4: "GetResCnt"}
HSM_OPC = {0: "DDI", 1: "FlushSession", 2: "TBOR"}

_DECLARATION = re.compile(r"^(azihsm_\w+)\((.*)\)\s+(\".*)$")
_SPEC = re.compile(r"%0?\d*(?:l{0,2})([uxds])")
_VALUE = {"u": r"(\d+)", "d": r"(-?\d+)", "x": r"([0-9a-fA-F]+)", "s": r"(.*?)"}
_LINE = re.compile(r"^(?:(\d+)@(\d+\.\d+):)?(azihsm_\w+) (.*)$")


@dataclass(frozen=True)
class EventFormat:
    name: str
    args: tuple[str, ...]
    kinds: tuple[str, ...]
    pattern: re.Pattern[str]


def _format(declaration: str) -> EventFormat | None:
    match = _DECLARATION.match(declaration)
    if not match:
        return None
    name, signature, fmt = match.groups()
    args = tuple(a.split()[-1].lstrip("*") for a in signature.split(",") if a.strip())
    fmt = re.sub(r'"\s*PRI([xud])64\s*"?', r"\1", fmt).strip('"')
    kinds = tuple(_SPEC.findall(fmt))
    parts = _SPEC.split(fmt)   # literal, kind, literal, kind, ...
    regex = "".join(re.escape(p) if i % 2 == 0 else _VALUE[p] for i, p in enumerate(parts))
    return EventFormat(name, args, kinds, re.compile(f"^{regex}$"))


@cache
def formats(path: Path | None = None) -> dict[str, EventFormat]:
    """The device's trace events by name, from its trace-events file (default: the source tree's)."""
    found = (_format(line.strip()) for line in (path or paths.trace_events()).read_text().splitlines())
    return {f.name: f for f in found if f}


def parse_line(line: str) -> dict[str, Any] | None:
    """One log line as ``{"event": name, "time": s or None, "args": {...}}``; None if not ours."""
    match = _LINE.match(line.rstrip("\n"))
    if not match:
        return None
    _, stamp, name, text = match.groups()
    fmt = formats().get(name)
    values = fmt.pattern.match(text) if fmt else None
    if not fmt or not values:
        return {"event": name, "time": float(stamp) if stamp else None, "args": {"text": text}}
    args = {arg: int(v, 16) if kind == "x" else v if kind == "s" else int(v)
            for arg, kind, v in zip(fmt.args, fmt.kinds, values.groups())}
    return {"event": name, "time": float(stamp) if stamp else None, "args": args}


def _latency(start: float | None, end: float | None) -> dict[str, float]:
    return {"latency_us": round((end - start) * 1e6, 1)} if start is not None and end is not None else {}


class Pairer:
    """Turns log lines into trace records: submissions and completions paired by (queue, cid) into
    ``command`` and ``admin`` records; every other event passes through as a ``device`` record."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int, int], dict[str, Any]] = {}

    def feed(self, line: str) -> list[dict[str, Any]]:
        """The records completed by ``line`` (none for a submission or a line that is not ours)."""
        event = parse_line(line)
        if event is None:
            return []
        name, args, at = event["event"], event["args"], event["time"]
        base = {"time": at, "source": "device"}
        if name == "azihsm_admin_cmd":
            self._pending[("admin", 0, args["cid"])] = event
            return []
        if name == "azihsm_hsm_submit":
            self._pending[("hsm", args["sqid"], args["cid"])] = event
            return []
        if name == "azihsm_admin_done":
            start = self._pending.pop(("admin", 0, args["cid"]), None)
            record = {**base, "event": "admin", "queue": 0, "cid": args["cid"],
                      "op": ADMIN_OPCODES.get(args["opc"], f"admin0x{args['opc']:02x}"),
                      "status": args["status"], "dw0": args["dw0"]}
            if start:
                record.update(time=start["time"], dw10=start["args"]["dw10"],
                              dw11=start["args"]["dw11"], **_latency(start["time"], at))
            return [record]
        if name == "azihsm_hsm_complete":
            start = self._pending.pop(("hsm", args["sqid"], args["cid"]), None)
            record = {**base, "event": "command", "queue": args["sqid"], "cid": args["cid"],
                      "status": args["status"], "session_op": SessionOp(args["flags"] & 3).name,
                      "response_bytes": args["byte_count"]}
            if start:
                s = start["args"]
                record.update(time=start["time"], op=HSM_OPC.get(s["opc"], f"opc{s['opc']}"),
                              msg_id=s["msg_id"], request_bytes=s["src_len"],
                              **_latency(start["time"], at))
            return [record]
        return [{**base, "event": name.removeprefix("azihsm_"), **args}]


def records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Trace records of a whole QEMU log."""
    pairer = Pairer()
    for line in lines:
        yield from pairer.feed(line)
