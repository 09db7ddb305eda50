"""QMP tooling: the azihsm device's state, raw QMP commands and guest memory dumps, for a running
platform (``pyhsm run`` leaves ``qmp.sock`` in its run directory).

``pyhsm qmp TARGET hsm-state`` prints the device's QOM state (link, queues, counters);
``pyhsm qmp TARGET dump FILE`` writes an ELF dump of guest memory plus ``FILE.device.json`` (the
device state at that moment, which ``pyhsm inspect FILE --rings`` reads); anything else is a QMP
command with ``name=value`` arguments (values parsed as JSON when they are JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from pathlib import Path
from typing import Any

from qemu.qmp import QMPError
from qemu.qmp.legacy import QEMUMonitorProtocol

HSM_PATH = "/machine/peripheral/hsm0"
TOOLS_SOCKET = "qmp-tools.sock"     # the run directory's monitor for tools (pyhsm.tools.inspect.run_debug)
CONNECT_TIMEOUT_S = 10.0
HSM_PROPERTIES = ("serial", "link-state", "inflight", "commands-completed", "commands-failed",
                  "queues")


def socket_path(target: Path) -> Path:
    """``target`` is a QMP socket or a run directory (its tools socket, else ``qmp.sock``)."""
    if not target.is_dir():
        return target
    tools = target / TOOLS_SOCKET
    return tools if tools.exists() else target / "qmp.sock"


def connect(target: Path, timeout: float = CONNECT_TIMEOUT_S) -> QEMUMonitorProtocol:
    """A negotiated QMP connection; raises ``ConnectionError`` if QEMU does not greet in time
    (a QMP socket serves one client at a time: another one may hold it)."""
    path = socket_path(target)
    qmp = QEMUMonitorProtocol(str(path))
    failure: list[BaseException] = []

    def negotiate() -> None:
        try:
            qmp.connect()
        except BaseException as exc:   # handed to the caller below
            failure.append(exc)
    worker = threading.Thread(target=negotiate, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ConnectionError(f"no QMP greeting on {path} within {timeout:.0f} s: another client "
                              f"holds it (use the run directory's {TOOLS_SOCKET})")
    if failure:
        raise ConnectionError(f"QMP {path}: {failure[0]}") from failure[0]
    return qmp


def device_state(qmp: QEMUMonitorProtocol, path: str = HSM_PATH) -> dict[str, Any]:
    """The device's QOM properties (``queues`` is a list of objects, schema in docs/device.md;
    see ``pyhsm.tools.inspect.rings``)."""
    return {name: qmp.cmd("qom-get", path=path, property=name) for name in HSM_PROPERTIES}


def dump_memory(qmp: QEMUMonitorProtocol, out: Path, path: str = HSM_PATH) -> dict[str, Any]:
    """Dump guest memory to ``out`` (ELF, physical addresses) and the device state beside it.

    The VM is paused around the dump so rings and memory agree; it resumes if it was running."""
    running = qmp.cmd("query-status")["status"] == "running"
    if running:
        qmp.cmd("stop")
    try:
        state = device_state(qmp, path)
        qmp.cmd("dump-guest-memory", paging=False, protocol=f"file:{out.resolve()}")
    finally:
        if running:
            qmp.cmd("cont")
    Path(f"{out}.device.json").write_text(json.dumps(state, indent=1) + "\n")
    return state


def parse_arguments(items: list[str]) -> dict[str, Any]:
    """``name=value`` words to QMP arguments; a value that parses as JSON is taken as JSON."""
    arguments: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"argument {item!r} is not name=value")
        try:
            arguments[name] = json.loads(value)
        except json.JSONDecodeError:
            arguments[name] = value
    return arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "qmp", help="talk to a running platform's QEMU over QMP",
        description="TARGET is the run directory printed by `pyhsm run` or a QMP socket. COMMAND is "
                    "hsm-state (the azihsm device's state), dump FILE (guest memory as ELF, and "
                    "FILE.device.json), or any QMP command followed by name=value arguments, "
                    "e.g. `pyhsm qmp RUN qom-get path=/machine/peripheral/hsm0 property=inflight`.")
    p.add_argument("target", type=Path, help="run directory or QMP socket")
    p.add_argument("command", help="hsm-state, dump, or a QMP command")
    p.add_argument("arguments", nargs="*", help="dump: FILE; QMP command: name=value ...")
    p.add_argument("--device", default=HSM_PATH, help=f"QOM path of the device (default {HSM_PATH})")
    p.set_defaults(func=_qmp_command)


def _qmp_command(args: argparse.Namespace) -> int:
    try:
        result = _run(args)
    except (ConnectionError, OSError, QMPError, ValueError) as exc:
        print(f"pyhsm qmp: {exc}", file=sys.stderr)
        return 1
    print(result if isinstance(result, str) else json.dumps(result, indent=1))
    return 0


def _run(args: argparse.Namespace) -> Any:
    qmp = connect(args.target)
    try:
        if args.command == "hsm-state":
            result: Any = device_state(qmp, args.device)
        elif args.command == "dump":
            if len(args.arguments) != 1:
                raise ValueError("dump needs exactly one FILE")
            out = Path(args.arguments[0])
            dump_memory(qmp, out, args.device)
            result = {"dump": str(out), "device_state": f"{out}.device.json"}
        else:
            result = qmp.cmd(args.command, **parse_arguments(args.arguments))
    finally:
        with contextlib.suppress(EOFError, ConnectionError):   # e.g. after `quit`
            qmp.close()
    return result
