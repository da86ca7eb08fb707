"""Scheduled runs pass the one admission gate: run now is held exactly like a cron run."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from budgets.services import budget_policy_update
from jobs.models import Job
from jobs.runner import run_job
from jobs.services import job_submit
from schedules.models import Execution, Schedule
from schedules.services import schedule_trigger, schedules_tick

pytestmark = pytest.mark.django_db(transaction=True)


def test_run_now_over_the_rate_limit_is_held_exactly_like_a_cron_run(acme, make_schedule):
    budget_policy_update(team=acme, changes={"calls_per_minute": 1}, by=None)
    run_job(job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job.public_id)  # the one call
    schedule = make_schedule(cron="* * * * *", overlap_policy="allow")
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=datetime.now(UTC).replace(second=0, microsecond=0))
    schedules_tick()
    manual = schedule_trigger(schedule=schedule, by="alice")
    cron = Execution.objects.get(trigger="cron")
    for execution in (cron, manual):
        run_job(execution.job.public_id)
    cron_job, manual_job = (Job.objects.get(pk=e.job_id) for e in (cron, manual))
    assert (cron_job.status, manual_job.status) == (Job.Status.PAUSED, Job.Status.PAUSED)
    assert [r["kind"] for r in cron_job.hold_reasons] == [r["kind"] for r in manual_job.hold_reasons] == ["rate"]
    assert Execution.objects.get(pk=manual.pk).status == "paused"
