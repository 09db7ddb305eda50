"""Counts of the hostile inputs and faults the tests tried, and what came of them.

Tests add rows with ``RELIABILITY.record`` (or the ``reliability`` fixture); tests/conftest.py writes the
table to build/reliability.md at the end of a run, and ``make reliability`` copies it into
docs/reliability.md.
"""

from __future__ import annotations


class Reliability:
    """Counts of hostile inputs and faults the tests tried, and what came of them: rendered as the table
    of docs/reliability.md (``make reliability``) and written to build/reliability.md after each run."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], list] = {}

    def record(self, kind: str, what: str, tried: int, result: str) -> None:
        """Add ``tried`` attempts of ``what`` (a hostile input or fault of ``kind``) with ``result``."""
        row = self.rows.setdefault((kind, what), [0, result])
        row[0] += tried
        row[1] = result

    def table(self) -> str:
        lines = ["| hostile input or fault | what was tried | times | result |", "|---|---|---:|---|"]
        for (kind, what), (tried, result) in sorted(self.rows.items()):
            lines.append(f"| {kind} | {what} | {tried:,} | {result} |")
        return "\n".join(lines) + "\n"


RELIABILITY = Reliability()
