"""Guest workloads: named, ordered lists of steps the guest agent runs and reports.

A workload module ``pyhsm.guest.workloads.NAME`` exposes ``WORKLOAD``. Steps share a context
dict; a step returns a JSON-serialisable detail dict (or None) or raises. After the first failure the
remaining steps are reported ``not run``; ``NotAvailable`` marks a step whose code has not landed
(e.g. a client method), which also fails the workload. ``cleanup`` always runs last.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from pyhsm.protocol import console

Context = dict[str, Any]
Emit = Callable[..., None]


class NotAvailable(Exception):
    """A piece this step needs is not in this build (names what is missing)."""


@dataclass(frozen=True)
class Step:
    name: str
    action: Callable[[Context], dict[str, Any] | None]


@dataclass(frozen=True)
class Workload:
    steps: tuple[Step, ...]
    cleanup: Callable[[Context], None] = lambda context: None

    def run(self, emit: Emit) -> bool:
        """Run the steps in order, emitting one ``step`` event each; True when all passed."""
        context: Context = {}
        blocker = ""
        try:
            for step in self.steps:
                if blocker:
                    emit("step", name=step.name, result=console.NOT_RUN, error=f"after {blocker}")
                    continue
                started = time.monotonic()
                result, detail, error = console.OK, None, ""
                try:
                    detail = step.action(context)
                except NotAvailable as exc:
                    result, error = console.UNAVAILABLE, str(exc)
                except Exception as exc:  # a failed step is reported, never crashes the agent
                    result, error = console.FAILED, f"{type(exc).__name__}: {exc}"
                ms = round((time.monotonic() - started) * 1000, 2)
                emit("step", name=step.name, result=result, ms=ms, detail=detail or {}, error=error)
                if result != console.OK:
                    blocker = f"{step.name} {result}"
        finally:
            self.cleanup(context)
        return not blocker
