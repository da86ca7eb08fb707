"""Real processes for fault tests: django-q2 clusters and tickers started with `manage.py` against
the test database, killed and restarted at will. Every test here uses a queue of its own."""

from __future__ import annotations

import pytest
from django.db.models import Count

from jobs.models import Job, TaskLog
from tests.fault import fault_handlers  # noqa: F401  (the same handlers the clusters load)
from tests.processes import Processes, wait_for  # noqa: F401  (the suite's helpers)

Status = Job.Status
FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


@pytest.fixture
def processes(processes: Processes, settings) -> Processes:
    """The shared real-process fixture (tests/conftest.py), with four workers; PostgreSQL only."""
    if not settings.IS_POSTGRES:
        pytest.skip("fault tests kill processes mid-write; they run on PostgreSQL (SQLite has one writer)")
    processes.env["PULSE_WORKERS"] = "4"
    return processes


def finished_runs() -> dict[int, int]:
    """Per job pk, how many times its handler ran to its last line."""
    rows = TaskLog.objects.filter(stage="fault", message="finished").values("job").annotate(n=Count("id"))
    return {row["job"]: row["n"] for row in rows}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests run only when asked for (`-m slow`); the normal run keeps their short versions."""
    if "slow" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow (see README, the fault suite)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)
