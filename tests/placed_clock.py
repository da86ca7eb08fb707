"""A pytest plugin to provoke tests that lean on the wall clock (`-p tests.placed_clock`): with
PULSE_TEST_CLOCK set to an instant (e.g. "2026-06-30T13:00:00Z"), every test starts a random
0 to PULSE_TEST_CLOCK_JITTER seconds (default 0.3) before it, the clock ticking, so that most of
them cross the turn of the minute and hour (and day, week, month, year) there. A failed test's report says the
instant it started at.

Every test waits out the last 2 minutes before midnight UTC (tests/conftest.py), so a placed
midnight shows that the wait works; place the clock at another turn (an hour's, a minute's) to
look for more. It moves Python's clock only: use it on the embedded configuration (on PostgreSQL
the database's clock still decides the budget windows), and expect the tests of real worker
processes, which keep the real clock, to see odd times (a negative uptime)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import time_machine


@pytest.fixture(autouse=True)
def _placed_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    at = os.environ.get("PULSE_TEST_CLOCK", "")
    if not at:
        yield
        return
    jitter = float(os.environ.get("PULSE_TEST_CLOCK_JITTER", "0.3"))
    start = datetime.fromisoformat(at) - timedelta(seconds=random.uniform(0, jitter))  # nosec B311
    request.node.user_properties.append(("placed clock", start.isoformat()))
    with time_machine.travel(start, tick=True):
        yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.failed:
        for name, value in report.user_properties:
            if name == "placed clock":
                report.sections.append(("Placed clock", f"The test started at {value}."))
