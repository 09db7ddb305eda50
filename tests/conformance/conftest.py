"""The vendor conformance suite (docs/conformance.md): fixtures and the coverage count.

Each ``test_<vendor file>.py`` mirrors ``ddi/lib/tests/integration/<vendor file>.rs`` of
Azure/azihsm-sdk, one test function per vendor test under the same name, run once per device
profile (``physical``, ``virtual``). At the end of a run the summary prints how many of the vendor's
tests are covered and, per profile, how many passed, failed and were skipped (with the reasons);
the same counts go to build/conformance.json, from which ``report.py`` writes docs/conformance.md.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from pyhsm.protocol.ddi.types import DeviceKind  # noqa: E402
from tests.conformance.vendor import Device, Setup, common_setup, make_device  # noqa: E402
from tests.conformance.vendor_inventory import VENDOR_TESTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "build" / "conformance.json"
_HERE = Path(__file__).resolve().parent


@pytest.fixture(params=[DeviceKind.Physical, DeviceKind.Virtual], ids=["physical", "virtual"])
def profile(request) -> DeviceKind:
    return request.param


@pytest.fixture
def device(tmp_path: Path, profile: DeviceKind) -> Device:
    """A fresh device of the profile: the vendor tests reset theirs (NSSR) before each test."""
    return make_device(tmp_path, profile)


@pytest.fixture
def setup(device: Device) -> Setup:
    return common_setup(device)


def vendor_test(item: pytest.Item) -> tuple[str, str] | None:
    """(vendor file, vendor test) that a conformance test mirrors, or None for other tests."""
    path = Path(str(item.fspath)).resolve()
    if path.parent != _HERE or not path.name.startswith("test_"):
        return None
    return path.stem[len("test_"):], item.originalname  # type: ignore[attr-defined]


_ITEMS: dict[str, tuple[tuple[str, str], str]] = {}   # node id -> ((vendor file, vendor test), profile)
_OUTCOMES: dict[str, dict[tuple[str, str], str]] = defaultdict(dict)
_SKIPS: dict[str, Counter] = defaultdict(Counter)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        mirrored = vendor_test(item)
        if mirrored is None:
            continue
        if mirrored[1] not in VENDOR_TESTS.get(mirrored[0], ()):
            raise pytest.UsageError(f"{item.nodeid}: no vendor test {mirrored[0]}.rs::{mirrored[1]}")
        _ITEMS[item.nodeid] = (mirrored, item.callspec.params["profile"].name.lower())  # type: ignore[attr-defined]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _ITEMS:
        return
    key, profile = _ITEMS[report.nodeid]
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _OUTCOMES[profile][key] = "skipped"
        _SKIPS[profile][reason.removeprefix("Skipped: ")] += 1
    elif report.failed:
        _OUTCOMES[profile][key] = "failed"
    elif report.when == "call" and _OUTCOMES[profile].get(key) != "failed":
        _OUTCOMES[profile][key] = "passed"


def summary() -> dict:
    """The counts of this run: per profile passed/failed/skipped (with reasons) and per vendor file."""
    total = sum(len(v) for v in VENDOR_TESTS.values())
    covered = {k for outcomes in _OUTCOMES.values() for k in outcomes}
    files = {f: {"vendor": len(tests), "covered": sum((f, t) in covered for t in tests)}
             for f, tests in VENDOR_TESTS.items()}
    profiles = {}
    for profile, outcomes in sorted(_OUTCOMES.items()):
        counts = Counter(outcomes.values())
        profiles[profile] = {"passed": counts["passed"], "failed": counts["failed"], "skipped": counts["skipped"],
                             "skip_reasons": dict(_SKIPS[profile])}
        for f in files:
            files[f][profile] = dict(Counter(o for (vf, _), o in outcomes.items() if vf == f))
    return {"vendor_total": total, "covered": len(covered), "profiles": profiles, "files": files}


def pytest_terminal_summary(terminalreporter) -> None:
    if not _OUTCOMES:
        return
    result = summary()
    write = terminalreporter.write_line
    terminalreporter.section("vendor DDI conformance (Azure/azihsm-sdk ddi/lib/tests/integration)")
    write(f"vendor tests: {result['vendor_total']}, covered: {result['covered']}")
    for profile, counts in result["profiles"].items():
        write(f"{profile}: passed {counts['passed']}, failed {counts['failed']}, skipped {counts['skipped']}")
        for reason, n in sorted(counts["skip_reasons"].items()):
            write(f"    skipped {n}: {reason}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1, sort_keys=True))
