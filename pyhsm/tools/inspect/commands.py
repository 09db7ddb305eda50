"""``pyhsm inspect``: processes, kernel log, HSM queue rings and a secret scan of a guest's memory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pyhsm.protocol import secrets_file
from pyhsm.protocol.secrets_file import Secret
from pyhsm.tools.inspect import profile, rings, scan
from pyhsm.tools.inspect.kernel import Kernel
from pyhsm.tools.inspect.memory import PhysicalMemory

MEMORY_FILE = "guest.mem"      # the memory-backend file in a `pyhsm run --debug` run directory


def memory_path(target: Path) -> Path:
    """``target`` is a memory file (live backend file, ELF dump or raw image) or a run directory."""
    return target / MEMORY_FILE if target.is_dir() else target


def device_state(target: Path, memory: Path, qmp_target: Path | None) -> dict[str, Any]:
    """The device's QOM state: live over QMP (the run directory's socket by default), else the
    ``.device.json`` written beside a dump."""
    saved = Path(f"{memory}.device.json")
    if qmp_target is None and saved.exists():
        return json.loads(saved.read_text())
    from pyhsm.tools import qmp
    client = qmp.connect(qmp_target or target)
    try:
        return qmp.device_state(client)
    finally:
        client.close()


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect", help="look into a guest's memory from the host",
        description="Read a guest's physical memory from outside: the run directory of `pyhsm run "
                    "--debug` (its shared memory file, live), or a dump from `pyhsm qmp RUN dump "
                    "FILE`. The guest kernel must run with nokaslr (`--debug` adds it). Default "
                    "action: --ps.")
    p.add_argument("target", type=Path, help="run directory, memory file or dump")
    p.add_argument("--ps", action="store_true", help="list processes")
    p.add_argument("--dmesg", action="store_true", help="print the kernel log ring")
    p.add_argument("--rings", action="store_true",
                   help="decode the HSM driver's submission and completion rings")
    p.add_argument("--scan-secrets", type=Path, metavar="FILE",
                   help="search memory for the secrets listed in FILE (pyhsm serve --secrets-out)")
    p.add_argument("--scan-hex", action="append", default=[], metavar="HEX",
                   help="search memory for this byte string (repeatable)")
    p.add_argument("--qmp", type=Path, default=None,
                   help="QMP socket or run directory for --rings (default: the target's, or the "
                        "dump's .device.json)")
    p.add_argument("--vmlinuz", type=Path,
                   help="the guest's kernel image (default: build/images/vmlinuz)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_inspect_command)


def _inspect_command(args: argparse.Namespace) -> int:
    try:
        return _inspect(args)
    except (OSError, ValueError, LookupError, RuntimeError) as exc:
        # unreadable file, bad secrets file, unmapped address, wrong kernel/KASLR, QMP unreachable
        print(f"pyhsm inspect: {exc}", file=sys.stderr)
        return 1


def _inspect(args: argparse.Namespace) -> int:
    if not (args.ps or args.dmesg or args.rings or args.scan_secrets or args.scan_hex):
        args.ps = True
    path = memory_path(args.target)
    results: dict[str, Any] = {}
    found_secret = False
    with PhysicalMemory(path) as memory:
        if args.ps or args.dmesg:
            kernel = Kernel(memory, profile.load(args.vmlinuz))
            if args.ps:
                results["processes"] = [p.__dict__ for p in kernel.processes()]
            if args.dmesg:
                results["dmesg"] = list(kernel.dmesg())
        if args.rings:
            state = device_state(args.target, path, args.qmp)
            results["rings"] = rings.decode_rings(memory, rings.load_queues(state["queues"]))
        secrets = [Secret(f"hex:{h[:8]}..", bytes.fromhex(h)) for h in args.scan_hex]
        if args.scan_secrets:
            secrets += secrets_file.load_secrets(args.scan_secrets)
        if secrets:
            hits = scan.scan(memory, secrets)
            found_secret = bool(hits)
            results["scan"] = {"secrets": len(secrets),
                               "hits": [{"label": h.label, "phys": hex(h.phys)} for h in hits]}
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        _print_text(results)
    return 3 if found_secret else 0


def _print_text(results: dict[str, Any]) -> None:
    out = sys.stdout
    if "processes" in results:
        out.write(f"{'PID':>6} {'TGID':>6} {'PPID':>6}  COMMAND\n")
        for p in results["processes"]:
            name = f"[{p['comm']}]" if p["kernel_thread"] else p["comm"]
            out.write(f"{p['pid']:>6} {p['tgid']:>6} {p['ppid']:>6}  {name}\n")
    for line in results.get("dmesg", []):
        out.write(line + "\n")
    for queue in results.get("rings", []):
        entries = queue.pop("entries")
        out.write(" ".join(f"{k}={v}" for k, v in queue.items()) + "\n")
        for entry in entries:
            out.write("    " + json.dumps(entry, separators=(",", ":")) + "\n")
    if "scan" in results:
        hits = results["scan"]["hits"]
        out.write(f"scanned for {results['scan']['secrets']} secrets: "
                  f"{len(hits)} found\n")
        for hit in hits:
            out.write(f"    FOUND {hit['label']} at guest-physical {hit['phys']}\n")
