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
    slot = datetime.now(UTC).replace(second=0, microsecond=0)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=slot)
    schedules_tick(now=slot)  # at the slot: a minute turning meanwhile would make the next one due too
    manual = schedule_trigger(schedule=schedule, by="alice")
    cron = Execution.objects.get(trigger="cron")
    for execution in (cron, manual):
        run_job(execution.job.public_id)
    cron_job, manual_job = (Job.objects.get(pk=e.job_id) for e in (cron, manual))
    assert (cron_job.status, manual_job.status) == (Job.Status.PAUSED, Job.Status.PAUSED)
    assert [r["kind"] for r in cron_job.hold_reasons] == [r["kind"] for r in manual_job.hold_reasons] == ["rate"]
    assert Execution.objects.get(pk=manual.pk).status == "paused"


def test_a_run_whose_job_could_never_run_is_a_failed_execution_with_one_alert(acme, make_schedule, time_machine):
    from pulse_site.live.models import Event

    time_machine.move_to("2026-06-01 10:00:30Z", tick=False)
    schedule = make_schedule(cron="* * * * *", handler="pulse.noop", estimate_override="2.00")
    budget_policy_update(team=acme, changes={"daily_limit": "1.00"}, by=None)
    for minute in (1, 2, 3):
        time_machine.move_to(f"2026-06-01 10:0{minute}:00.5Z", tick=False)
        schedules_tick()
    runs = list(Execution.objects.filter(schedule=schedule).order_by("fire_time"))
    assert [run.status for run in runs] == ["failed", "failed", "failed"]
    assert runs[0].reason.startswith("The estimate of 2 is above the team's daily limit of 1")
    assert not Job.objects.exists()
    schedule.refresh_from_db()
    assert schedule.broken_reason == ""  # a higher limit lets the next slot run
    alerts = Event.objects.filter(subject=schedule.public_id, kind="schedule.over_budget")
    assert alerts.count() == 1
    budget_policy_update(team=acme, changes={"daily_limit": "5.00"}, by=None)
    time_machine.move_to("2026-06-01 10:04:00.5Z", tick=False)
    schedules_tick()
    assert Execution.objects.filter(schedule=schedule).order_by("-fire_time").first().job is not None
