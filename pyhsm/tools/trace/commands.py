"""``pyhsm trace``: read or follow a trace (the backend's JSON lines or QEMU's azihsm log) with filters."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Iterator, TextIO

from pyhsm.tools.trace import qemu_log
from pyhsm.tools.trace.filters import Filter, parse_queue, parse_since

POLL_S = 0.2


def read_lines(stream: TextIO, follow: bool) -> Iterator[str]:
    """Complete lines of ``stream``; with ``follow``, keep waiting for more (like ``tail -f``)."""
    partial = ""
    while True:
        chunk = stream.readline()
        if chunk:
            partial += chunk
            if partial.endswith("\n"):
                yield partial
                partial = ""
        elif follow:
            time.sleep(POLL_S)
        else:
            if partial:
                yield partial
            return


def records(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Records from either format, line by line: JSON lines as they are, QEMU log lines decoded."""
    pairer = qemu_log.Pairer()
    for line in lines:
        if not line.startswith("{"):
            yield from pairer.feed(line)
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            print(f"pyhsm trace: skipped a malformed line: {line[:80]!r}", file=sys.stderr)


def format_text(record: dict[str, Any]) -> str:
    """One human-readable line per record; the decoded bodies follow as compact JSON."""
    stamp = time.strftime("%H:%M:%S", time.localtime(record["time"])) + \
        f".{int(record['time'] % 1 * 1e6):06d}" if record.get("time") else "-"
    head = [stamp, record.get("source", "?"), record.get("event", "?")]
    for key in ("queue", "cid", "session_id", "session_op", "op", "status", "ddi_status", "latency_us"):
        if key in record:
            value = record[key]
            head.append(f"{key}={value:#05x}" if key == "status" else f"{key}={value}")
    extra = {k: record[k] for k in ("request", "response") if record.get(k)}
    rest = {k: v for k, v in record.items() if k not in {"time", "source", "event", "queue", "cid",
            "session_id", "session_op", "op", "status", "ddi_status", "latency_us", "request",
            "response", "device", "partition", "msg_id"}}
    tail = json.dumps({**rest, **extra}, separators=(",", ":")) if rest or extra else ""
    return " ".join(str(h) for h in head) + (f" {tail}" if tail else "")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "trace", help="show a device/backend traffic trace",
        description="Read a trace file: JSON lines written by `pyhsm serve --trace FILE`, or QEMU's "
                    "azihsm_* trace events (log backend: -trace 'azihsm_*' -D FILE -msg "
                    "timestamp=on), or both interleaved. Secrets are already redacted in the file.")
    p.add_argument("file", type=Path, nargs="?", help="trace file (default: standard input)")
    p.add_argument("-f", "--follow", action="store_true", help="keep reading as the file grows")
    p.add_argument("--queue", type=parse_queue, help="admin, hsm, or a queue id")
    p.add_argument("--op", action="append", default=[], help="op name (repeatable), e.g. EccSign")
    p.add_argument("--session", type=int, help="session id")
    p.add_argument("--status", type=lambda s: int(s, 0), help="CQE status, e.g. 0x701")
    p.add_argument("--errors-only", action="store_true",
                   help="only records with a nonzero CQE status or a DDI status other than Success")
    p.add_argument("--since", type=parse_since, help="30s, 5m, 2h, a UNIX time or an ISO time")
    p.add_argument("--json", action="store_true", help="print records as JSON lines")
    p.set_defaults(func=_trace_command)


def _trace_command(args: argparse.Namespace) -> int:
    keep = Filter(queue=args.queue, ops=frozenset(o.lower() for o in args.op), session=args.session,
                  status=args.status, errors_only=args.errors_only, since=args.since)
    try:
        stream = open(args.file, encoding="utf-8", errors="replace") if args.file else sys.stdin
    except OSError as exc:
        print(f"pyhsm trace: {exc}", file=sys.stderr)
        return 1
    try:
        for record in records(read_lines(stream, args.follow)):
            if keep(record):
                print(json.dumps(record, separators=(",", ":")) if args.json else format_text(record),
                      flush=True)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        return 0
    finally:
        if args.file:
            stream.close()
    return 0
