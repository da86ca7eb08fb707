"""Real processes for fault tests: django-q2 clusters and tickers started with `manage.py` against
the test database, killed and restarted at will. Every test here uses a queue of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count

from jobs.models import Job, TaskLog
from tests.fault import fault_handlers  # noqa: F401  (the same handlers the clusters load)

ROOT = Path(__file__).resolve().parents[2]
Status = Job.Status
FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


class Processes:
    """Start, kill and reap `manage.py` processes, each in its own process group."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.running: list[subprocess.Popen] = []

    def start(self, *command: str, **env: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "manage.py", *command], cwd=ROOT, env={**self.env, **env},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.running.append(proc)
        return proc

    def signal(self, proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    def kill_all(self) -> None:
        """SIGKILL every process group at once: no handler, no cleanup, as a power cut would."""
        for proc in self.running:
            self.signal(proc, signal.SIGKILL)
        for proc in self.running:
            proc.wait()
        self.running.clear()

    def stop_all(self) -> None:
        for proc in self.running:
            self.signal(proc, signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.signal(proc, signal.SIGKILL)
                proc.wait()
        self.running.clear()


@pytest.fixture
def processes(settings, monkeypatch):
    if not settings.IS_POSTGRES:
        pytest.skip("fault tests kill processes mid-write; they run on PostgreSQL (SQLite has one writer)")
    # A queue of this test's own, so nothing left in the broker by another run is picked up.
    name = f"pulse-fault-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PULSE_QUEUE_NAME", name)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "name": name}
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "PREFIX", name, raising=False)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", name, raising=False)
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "PULSE_QUEUE_NAME": name,
        "PULSE_LEASE_SECONDS": "3",
        "PULSE_CANCEL_POLL_MS": "100",
        "PULSE_TICK_MS": "200",
        # After a kill -9 the messages a cluster had pulled from Redis are gone; their jobs count
        # against the dispatch capacity until re-dispatched after this long (default 120 s, which
        # stalls the whole backlog that long: measured 124 s for 40 half-second jobs).
        "PULSE_REDISPATCH_SECONDS": "5",
        "PULSE_WORKERS": "4",
        "PULSE_HANDLER_MODULES": "jobs.handlers.builtin,tests.fault.fault_handlers",
    }
    procs = Processes(env)
    yield procs
    procs.stop_all()


def wait_for(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s")


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
