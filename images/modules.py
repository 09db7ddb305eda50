#!/usr/bin/env python3
"""Copy kernel modules and everything they depend on from one module tree into another.

Usage: modules.py SRC_TREE DEST_TREE LIST_FILE [--load-order FILE]
SRC_TREE is a lib/modules/<abi> directory with modules.dep; LIST_FILE names one module per line
(``#`` comments allowed). Modules are copied to the same relative paths under DEST_TREE, along with
modules.builtin and modules.order so depmod can index them; with --load-order, the relative paths
are also written to FILE in an order where every module follows its dependencies (for insmod).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def read_deps(tree: Path) -> dict[str, list[str]]:
    """Map each module's relative path to the relative paths it depends on (from modules.dep)."""
    deps = {}
    for line in (tree / "modules.dep").read_text().splitlines():
        module, _, needs = line.partition(":")
        deps[module] = needs.split()
    return deps


def by_name(deps: dict[str, list[str]]) -> dict[str, str]:
    """Module name (dashes as underscores, no suffix) to its relative path."""
    return {Path(path).name.split(".ko")[0].replace("-", "_"): path for path in deps}


def load_order(wanted: list[str], deps: dict[str, list[str]]) -> list[str]:
    """Relative paths of ``wanted`` modules and their dependencies, dependencies first."""
    names = by_name(deps)
    missing = [w for w in wanted if w.replace("-", "_") not in names]
    if missing:
        raise SystemExit(f"modules.py: not in the module tree: {', '.join(missing)}")
    ordered: list[str] = []

    def visit(path: str) -> None:
        if path in ordered:
            return
        for dep in reversed(deps[path]):   # modules.dep lists the deepest dependency last
            visit(dep)
        ordered.append(path)

    for name in wanted:
        visit(names[name.replace("-", "_")])
    return ordered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("dest", type=Path)
    parser.add_argument("list", type=Path)
    parser.add_argument("--load-order", type=Path)
    args = parser.parse_args(argv)
    wanted = [line.split("#")[0].strip() for line in args.list.read_text().splitlines()]
    ordered = load_order([w for w in wanted if w], read_deps(args.src))
    for rel in ordered:
        (args.dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(args.src / rel, args.dest / rel)
    for index in ("modules.builtin", "modules.builtin.modinfo", "modules.order"):
        shutil.copy2(args.src / index, args.dest / index)
    if args.load_order:
        args.load_order.write_text("".join(f"{rel}\n" for rel in ordered))
    return 0


if __name__ == "__main__":
    sys.exit(main())
