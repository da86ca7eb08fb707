"""A noisy neighbour: team A floods the queue; team B's one job starts within seconds, and A never
runs more jobs at once than its concurrency cap. Real qcluster and pulse_ticker processes.

How Pulse keeps teams fair: the backlog waits in Pulse's jobs table, not in the broker; the
dispatcher hands django-q2 only a few jobs at a time (PULSE_DISPATCH_CAPACITY), chosen round-robin
across teams, so B's job is next in line as soon as any slot frees; admission holds A's jobs past
its max_concurrent cap in the same transaction that would start them."""

from __future__ import annotations

import time

import pytest

from budgets.services import budget_policy_update
from jobs.models import Job
from jobs.services import job_submit
from tests.fault.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]
Status = Job.Status
CAP = 2


def _flood(acme, globex, processes, *, flood: int) -> None:
    budget_policy_update(team=acme, changes={"max_concurrent": CAP}, by=None)
    for _ in range(flood):
        job_submit(team=acme, handler="fault.work", payload={"steps": 2, "seconds": 0.25}, source="api")
    processes.start("qcluster")
    processes.start("pulse_ticker")
    wait_for(lambda: Job.objects.filter(team=acme, status=Status.RUNNING).exists(), what="A running")
    theirs = job_submit(team=globex, handler="fault.work", payload={"steps": 1, "seconds": 0.1}, source="api").job
    most_running = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        most_running = max(most_running, Job.objects.filter(team=acme, status=Status.RUNNING).count())
        theirs.refresh_from_db()
        if theirs.status == Status.COMPLETED:
            break
        time.sleep(0.05)
    waited = (theirs.started_at - theirs.created_at).total_seconds() if theirs.started_at else None
    backlog = Job.objects.filter(team=acme, status__in=[Status.QUEUED, Status.PAUSED]).count()
    print(f"\nnoisy neighbour: A submitted {flood} (cap {CAP}); B's job started {waited} s after submit with "
          f"{backlog} of A's still waiting; A's most running at once: {most_running}")
    assert theirs.status == Status.COMPLETED
    assert waited is not None and waited <= 5.0
    assert most_running <= CAP


def test_one_job_of_team_b_is_not_stuck_behind_team_as_backlog_short(acme, globex, processes):
    _flood(acme, globex, processes, flood=100)


@pytest.mark.slow
def test_one_job_of_team_b_is_not_stuck_behind_team_as_10000_jobs(acme, globex, processes):
    _flood(acme, globex, processes, flood=10_000)
