"""The ``pyhsm`` command: one sub-command per job, each registered by the module that does it."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pyhsm import __version__, paths

# Modules that add sub-commands; each has ``register(subparsers)``.
COMMAND_MODULES = (
    "pyhsm.server",
    "pyhsm.launcher.commands",
    "pyhsm.rot.commands",
    "pyhsm.trace.commands",
    "pyhsm.inspect.commands",
    "pyhsm.qmp",
    "pyhsm.cvm.commands",
    "pyhsm.serialbus.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyhsm",
        description="The emulated Azure Integrated HSM: backend, client tools and the V7 server launcher.")
    parser.add_argument("--version", action="version", version=f"pyhsm {__version__}")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="log level of messages written to stderr (default: info)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
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
