"""Helpers for reading a guest's report events in the end-to-end tests."""

from __future__ import annotations

from typing import Any

import pytest

from pyhsm.host.vm import Vm
from pyhsm.protocol import console

STEP_TIMEOUT_S = 300.0


def next_step(vm: Vm, timeout: float = STEP_TIMEOUT_S) -> dict[str, Any]:
    """The guest's next ``step`` event (``done`` before it fails the test)."""
    event = vm.next_event(timeout)
    while event["event"] not in ("step", "done"):
        event = vm.next_event(timeout)
    if event["event"] == "done":
        pytest.fail(f"guest workload ended before the expected step: {event}")
    return event


def expect_ok(event: dict[str, Any], name: str) -> dict[str, Any]:
    """Assert ``event`` is step ``name`` and passed; returns its detail."""
    assert event["name"] == name, f"expected step {name!r}, got {event}"
    assert event["result"] == console.OK, f"step {name!r} {event['result']}: {event.get('error')}"
    return event["detail"]


def run_to_done(vm: Vm, timeout: float = STEP_TIMEOUT_S) -> list[dict[str, Any]]:
    """All report events up to and including ``done``."""
    events: list[dict[str, Any]] = []
    events.append(vm.wait_for("done", timeout, events.append))
    return events


def assert_all_ok(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every step passed and the workload said ok; returns the step details by name."""
    steps = [e for e in events if e["event"] == "step"]
    bad = [f"{s['name']}: {s['result']} {s.get('error', '')}" for s in steps if s["result"] != console.OK]
    assert not bad and events[-1].get("ok"), f"guest steps not ok: {bad or events[-1]}"
    return {s["name"]: s["detail"] for s in steps}
