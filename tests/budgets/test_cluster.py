"""Two real worker processes draining jobs against a limit: each handler runs at most once and
the team never spends past its limit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from budgets.models import BudgetPolicy, Usage
from budgets.services import budget_policy_update
from jobs.models import Attempt, Job, TaskLog
from jobs.services import job_submit
from tests.budgets import cluster_handlers  # noqa: F401  (the same handlers the clusters load)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="two clusters racing need PostgreSQL"),
]
ROOT = Path(__file__).resolve().parents[2]
Status = Job.Status


@pytest.fixture
def clusters(settings, monkeypatch):
    name = f"pulse-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PULSE_QUEUE_NAME", name)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "name": name}
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "PREFIX", name, raising=False)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", name, raising=False)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PULSE_QUEUE_NAME": name,
        "PULSE_TICK_MS": "200",
        "PULSE_WORKERS": "3",
        "PULSE_HANDLER_MODULES": "jobs.handlers.builtin,tests.budgets.cluster_handlers",
    }
    started: list[subprocess.Popen] = []

    def start(*command: str) -> None:
        started.append(subprocess.Popen([sys.executable, "manage.py", *command], cwd=ROOT, env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True))

    yield start
    for proc in started:
        proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(condition, timeout: float = 90.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s")


def test_two_workers_draining_fifty_jobs_run_each_once_and_never_exceed_the_limit(acme, clusters):
    budget_policy_update(team=acme, changes={"daily_limit": "2.00"}, by=None)
    jobs = [job_submit(team=acme, handler="test.budget_paid", payload={"cost": "0.10"}, source="api").job
            for _ in range(50)]
    clusters("qcluster")
    clusters("qcluster")
    clusters("pulse_ticker")

    def settled():
        counts = dict(Job.objects.filter(team=acme).values_list("status").annotate(n=Count("id")).order_by())
        return counts if counts.get(Status.COMPLETED, 0) + counts.get(Status.PAUSED, 0) == 50 else None

    counts = wait_for(settled, what="every job completed or held")
    assert counts == {Status.COMPLETED: 20, Status.PAUSED: 30}
    day = Usage.objects.get(team=acme, scope="", kind="day")
    assert (day.committed, day.reserved) == (2_000_000, 0)
    assert BudgetPolicy.objects.get(team=acme).running == 0
    # Each handler ran at most once: one attempt and one handler log line per completed job.
    assert sorted(Attempt.objects.filter(job__in=jobs).values_list("job_id", flat=True)) == sorted(
        Job.objects.filter(team=acme, status=Status.COMPLETED).values_list("pk", flat=True))
    assert TaskLog.objects.filter(job__in=jobs, stage="work").count() == 20
    held = Job.objects.filter(team=acme, status=Status.PAUSED).first()
    assert held.hold_reasons[0]["kind"] == "budget" and held.resume_at == day.window_end
