"""Real worker processes draining jobs against the limits: each handler runs at most once, the
team never spends past its limit, and never runs more at once or starts more in a minute than its
policy allows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection  # noqa: F401  (the skipif condition reads it)
from django.db.models import Count

from budgets.models import BudgetPolicy, Ledger, Usage
from budgets.services import budget_policy_update
from jobs.models import Attempt, Job, TaskLog
from jobs.services import job_submit
from tests.budgets import cluster_handlers  # noqa: F401  (the same handlers the clusters load)
from tests.budgets.test_concurrency import run_together
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


def _most_at_once(spans: list[tuple[object, object]]) -> int:
    """The most spans open at one moment; one ending when another begins does not overlap it
    (a worker's chain hands its slot on at the same instant)."""
    edges = sorted([(end, -1) for _, end in spans] + [(start, 1) for start, _ in spans], key=lambda e: (e[0], e[1]))
    most = open_now = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


def test_four_submitters_and_two_clusters_never_pass_the_concurrency_cap_or_the_rate(acme, processes):
    """Counted from the ledger afterwards: a running slot is held from its reservation to its
    release (both at the database's clock), and every start reserves."""
    budget_policy_update(team=acme, changes={"max_concurrent": 2, "calls_per_minute": 8}, by=None)
    processes.start("qcluster", PULSE_WORKERS="2")
    processes.start("qcluster", PULSE_WORKERS="2")
    processes.start("pulse_ticker")

    def submitter() -> None:
        for _ in range(5):
            job_submit(team=acme, handler="test.budget_timed", payload={"seconds": 0.3}, source="api")

    run_together([submitter] * 4)

    def settled():
        # Seven done and none running is not the end: the rate still has room for an eighth, held
        # for a slot until the release pass lets it through (seen in CI). Eight done is; more than
        # eight would break the rate, and the assertion below says so.
        counts = dict(Job.objects.filter(team=acme).values_list("status").annotate(n=Count("id")).order_by())
        running = BudgetPolicy.objects.get(team=acme).running
        done = counts.get(Status.COMPLETED, 0)
        return counts if done >= 8 and done + counts.get(Status.PAUSED, 0) == 20 and not running else None

    counts = wait_for(settled, timeout=60, what="eight jobs completed and the rest held")
    assert counts == {Status.COMPLETED: 8, Status.PAUSED: 12}
    entries = Ledger.objects.filter(team=acme, scope="", window_kind="day")
    reserved = dict(((e.job_id, e.attempt), e.at) for e in entries.filter(kind=Ledger.Kind.RESERVE))
    released = dict(((e.job_id, e.attempt), e.at) for e in entries.filter(kind=Ledger.Kind.RELEASE))
    assert len(reserved) == 8 and set(released) == set(reserved)
    assert _most_at_once([(at, released[key]) for key, at in reserved.items()]) == 2
    assert max(reserved.values()) - min(reserved.values()) < timedelta(seconds=60)
    # None is said to resume before the first start leaves the minute (the ones behind others later).
    first_room = min(reserved.values()) + timedelta(seconds=60)
    assert all(job.resume_at is None or job.resume_at >= first_room for job in Job.objects.filter(team=acme))
