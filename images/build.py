#!/usr/bin/env python3
"""Build the guest images into build/images/, each step only when the hash of its inputs changed.

Contract: after a successful run, build/images/ holds ``vmlinuz``, ``initramfs.cpio.gz``,
``rootfs.ext4`` with its dm-verity hash tree appended, ``rootfs.verity`` (the tree's root hash, salt
and data blocks), plus ``azihsm.ko`` when guest/driver/ has a Makefile. A step's inputs are files and
directories of the source tree plus the stamps of the steps it builds on; a step runs when that
combined hash differs from its stamp or an output is missing. Exits non-zero, naming the step, when a
step fails. Steps are declared in ``STEPS``; each is one script in images/steps/.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

IMAGES = Path(__file__).resolve().parent
ROOT = IMAGES.parent
OUT = ROOT / "build" / "images"
STAMPS = OUT / "stamps"


@dataclass(frozen=True)
class Step:
    name: str
    inputs: tuple[str, ...]       # source-tree paths (files or directories) whose bytes matter
    outputs: tuple[str, ...]      # paths under build/images/ the step must leave behind
    after: tuple[str, ...] = ()   # steps whose results this one consumes

    @property
    def script(self) -> Path:
        return IMAGES / "steps" / f"{self.name}.sh"


STEPS = (   # in dependency order
    Step("kernel", ("images/pins.env",), ("vmlinuz", "kernel/modules.dep")),
    Step("base", ("images/pins.env",), ("cache/base-rootfs/usr/bin/python3",)),
    Step("driver", ("guest/driver",), ("driver.status",)),
    Step("initramfs", ("images/initramfs-init", "images/initramfs-modules.txt",
                       "images/modules.py"), ("initramfs.cpio.gz",), after=("kernel", "base")),
    Step("rootfs", ("images/pyhsm-init", "images/rootfs-modules.txt", "images/modules.py", "pyhsm"),
         ("rootfs.ext4", "rootfs.verity"), after=("kernel", "base", "driver")),
)

_IGNORED = {"__pycache__", ".pytest_cache"}
_IGNORED_SUFFIXES = (".pyc", ".o", ".ko", ".mod", ".mod.c", ".cmd", ".symvers", ".order")


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED)
        found += [Path(dirpath) / f for f in sorted(filenames)
                  if not f.endswith(_IGNORED_SUFFIXES) and not f.startswith(".")]
    return found


def input_hash(step: Step) -> str:
    """Hash of the step's script, its input files (path and bytes) and its predecessors' stamps."""
    digest = hashlib.sha256()
    for path in [step.script, *(f for p in step.inputs for f in _files(ROOT / p))]:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    for name in step.after:
        digest.update(name.encode() + b"\0" + _stamp(name).encode())
    return digest.hexdigest()


def _stamp(name: str) -> str:
    path = STAMPS / name
    return path.read_text().strip() if path.exists() else ""


def _pins() -> dict[str, str]:
    pins = {}
    for line in (IMAGES / "pins.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pins[key.strip()] = value.strip()
    return pins


def run_step(step: Step, env: dict[str, str]) -> bool:
    """Run ``step`` if stale. Returns whether it ran; raises ``SystemExit`` naming it on failure."""
    wanted = input_hash(step)
    if _stamp(step.name) == wanted and all((OUT / o).exists() for o in step.outputs):
        print(f"[images] {step.name}: up to date", flush=True)
        return False
    print(f"[images] {step.name}: building ...", flush=True)
    started = time.monotonic()
    result = subprocess.run(["bash", str(step.script)], env=env, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"[images] {step.name}: FAILED (exit {result.returncode}); see output above")
    missing = [o for o in step.outputs if not (OUT / o).exists()]
    if missing:
        raise SystemExit(f"[images] {step.name}: FAILED, did not produce {', '.join(missing)}")
    STAMPS.mkdir(parents=True, exist_ok=True)
    (STAMPS / step.name).write_text(wanted + "\n")
    print(f"[images] {step.name}: built in {time.monotonic() - started:.1f} s", flush=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="*", metavar="STEP",
                        help=f"steps to bring up to date: {', '.join(s.name for s in STEPS)} "
                             "(default: all, in order)")
    args = parser.parse_args(argv)
    unknown = set(args.steps) - {s.name for s in STEPS}
    if unknown:
        parser.error(f"unknown step(s): {', '.join(sorted(unknown))}")
    env = {**os.environ, **_pins(), "ROOT": str(ROOT), "OUT": str(OUT), "IMAGES": str(IMAGES),
           "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "1700000000")}
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(OUT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)    # one builder at a time (parallel test runs share OUT)
        for step in STEPS:
            if not args.steps or step.name in args.steps:
                run_step(step, env)
    print(f"[images] ready in {OUT} ({time.monotonic() - started:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
