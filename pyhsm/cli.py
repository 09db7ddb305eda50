"""The ``pyhsm`` command: one sub-command per job, each registered by the module that does it."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pyhsm import __version__, paths

# Modules that add sub-commands, each with ``register(subparsers)``, and the extra (pyproject.toml)
# that brings what it imports beyond the client's dependencies.
COMMAND_MODULES = (
    ("pyhsm.backend.server", "backend"),
    ("pyhsm.host.commands", "host"),
    ("pyhsm.backend.rot.commands", "backend"),
    ("pyhsm.tools.trace.commands", "tools"),
    ("pyhsm.tools.inspect.commands", "tools"),
    ("pyhsm.tools.qmp", "tools"),
    ("pyhsm.host.confidential.owner_commands", "host"),
    ("pyhsm.client.serialbus.commands", ""),
)
# Third-party packages only an extra installs: without them, their commands are left out, and said so.
OPTIONAL_PACKAGES = ("numba", "numpy", "qemu", "libvmi")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyhsm",
        description="The emulated Azure Integrated HSM: backend, client tools and the V7 server launcher.")
    parser.add_argument("--version", action="version", version=f"pyhsm {__version__}")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="log level of messages written to stderr (default: info)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    missing = []
    for name, extra in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            if not extra or (exc.name or "").split(".")[0] not in OPTIONAL_PACKAGES:
                raise
            missing.append(f"{name.rsplit('.', 2)[-2]} commands need pyhsm[{extra}] ({exc.name} is missing)")
            continue
        module.register(subparsers)
    if missing:
        parser.epilog = "Not installed: " + "; ".join(missing) + "."
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the sub-command ``argv`` names (default: the process's arguments); its exit status."""
    args = build_parser().parse_args(argv)
    try:
        paths.use_numba_cache()
    except paths.SourceTreeNotFound:
        pass   # outside the source tree numba keeps its own default cache location
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
