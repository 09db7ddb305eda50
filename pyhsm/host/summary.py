"""The run summary: each step with its result and time, printed as it completes and as a table."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from pyhsm.protocol import console


@dataclass(frozen=True)
class StepResult:
    name: str
    result: str      # one of console.OK / FAILED / UNAVAILABLE / NOT_RUN
    seconds: float
    note: str = ""


@dataclass
class Summary:
    out: Callable[[str], None]
    steps: list[StepResult] = field(default_factory=list)

    def add(self, name: str, result: str, seconds: float, note: str = "") -> None:
        step = StepResult(name, result, seconds, note)
        self.steps.append(step)
        self.out(_row(step))

    @contextmanager
    def timed(self, name: str) -> Iterator[list[str]]:
        """Time a host step; append a note to the yielded list. An exception records it as
        failed (with the message) and propagates."""
        notes: list[str] = []
        started = time.monotonic()
        try:
            yield notes
        except Exception as exc:
            self.add(name, console.FAILED, time.monotonic() - started, str(exc).splitlines()[0])
            raise
        self.add(name, console.OK, time.monotonic() - started, "; ".join(notes))

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.result == console.OK for s in self.steps)

    def table(self) -> str:
        failed = [s for s in self.steps if s.result != console.OK]
        verdict = "PASSED" if self.ok else f"FAILED ({len(failed)} of {len(self.steps)} steps not ok)"
        return "\n".join(["summary:", *(_row(s) for s in self.steps), f"result: {verdict}"])


def _row(step: StepResult) -> str:
    note = f"  {step.note}" if step.note else ""
    return f"  {step.result:<11} {step.seconds:8.2f} s  {step.name}{note}"
