#!/usr/bin/env python3
"""Write docs/reliability.md from the table a test run left in build/reliability.md (``make reliability``).

Usage: scripts/reliability-doc.py TABLE OUT
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

HEADER = """# Reliability: hostile inputs and faults tried

Produced by `make reliability` from the tests' own counts (`tests/reliability_log.py`): each row is a
kind of hostile input or fault, what the tests tried, how many times in one run, and what came of it.
The tests assert each result; this table only counts them. The threat model is docs/security.md.

Run of {date} on {machine} ({cores} cores, load {load:.2f}).

"""


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    table = Path(argv[1]).read_text()
    header = HEADER.format(date=datetime.date.today().isoformat(), machine=platform.machine(),
                           cores=os.cpu_count(), load=os.getloadavg()[0])
    Path(argv[2]).write_text(header + table)
    print(f"wrote {argv[2]} ({len(table.splitlines()) - 2} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
