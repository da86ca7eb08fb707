"""Two real worker processes draining jobs against a limit: each handler runs at most once and
the team never spends past its limit."""

from __future__ import annotations

import pytest
from django.db import connection  # noqa: F401  (the skipif condition reads it)
from django.db.models import Count

from budgets.models import BudgetPolicy, Usage
from budgets.services import budget_policy_update
from jobs.models import Attempt, Job, TaskLog
from jobs.services import job_submit
from tests.budgets import cluster_handlers  # noqa: F401  (the same handlers the clusters load)
from tests.processes import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="two clusters racing need PostgreSQL"),
]
Status = Job.Status


def test_two_workers_draining_fifty_jobs_run_each_once_and_never_exceed_the_limit(acme, processes):
    budget_policy_update(team=acme, changes={"daily_limit": "2.00"}, by=None)
    jobs = [job_submit(team=acme, handler="test.budget_paid", payload={"cost": "0.10"}, source="api").job
            for _ in range(50)]
    processes.start("qcluster", PULSE_WORKERS="3")
    processes.start("qcluster", PULSE_WORKERS="3")
    processes.start("pulse_ticker", PULSE_WORKERS="3")

    def settled():
        counts = dict(Job.objects.filter(team=acme).values_list("status").annotate(n=Count("id")).order_by())
        return counts if counts.get(Status.COMPLETED, 0) + counts.get(Status.PAUSED, 0) == 50 else None

    counts = wait_for(settled, timeout=90, what="every job completed or held")
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
