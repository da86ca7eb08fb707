"""Runs staged ahead of their slot (PULSE_SCHEDULE_STAGE_SECONDS, 60 s by default) with ticker
processes killed around the slot: three tickers stage the slot's runs, two are killed with SIGKILL
at once and the third a second before the slot; one comes back a few seconds after it (within the
misfire grace). Every schedule's slot runs exactly once, on the staged job; none is cancelled as
missed. Real pulse_ticker and qcluster processes on PostgreSQL. Waits for a minute's slot: slow."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from jobs.models import Job
from schedules.models import Execution, Schedule
from tests.fault.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600), pytest.mark.slow]
SCHEDULES = 40


def _wait_until(at: datetime) -> None:
    # Waiting for a wall-clock moment is the test's fault schedule, not a check.
    time.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))


def test_tickers_killed_around_a_staged_slot_run_each_schedule_once_for_it(acme, globex, processes):
    now = datetime.now(UTC)
    slot = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if (slot - now).total_seconds() < 25:  # time for three tickers to start and stage first
        slot += timedelta(minutes=1)
    policies = [("allow", "once"), ("allow", "skip"), ("skip", "skip"), ("queue", "all")]
    Schedule.objects.bulk_create(
        Schedule(team=acme if i % 2 else globex, name=f"S{i:03}", handler="pulse.noop", cron="* * * * *",
                 time_zone="UTC", overlap_policy=policies[i % 4][0], misfire_policy=policies[i % 4][1],
                 next_run_at=slot)
        for i in range(SCHEDULES)
    )
    processes.start("qcluster")
    tickers = [processes.start("pulse_ticker") for _ in range(3)]
    wait_for(lambda: Execution.objects.filter(fire_time=slot).count() >= SCHEDULES,
             timeout=(slot - datetime.now(UTC)).total_seconds() - 2, what="every run staged before the slot")
    staged = dict(Execution.objects.filter(fire_time=slot).values_list("schedule_id", "job_id"))
    processes.kill(tickers[0])
    processes.kill(tickers[1])
    _wait_until(slot - timedelta(seconds=1))
    processes.kill(tickers[2])
    _wait_until(slot + timedelta(seconds=3))
    processes.start("pulse_ticker")
    wait_for(lambda: Job.objects.filter(pk__in=staged.values(), status=Job.Status.COMPLETED).count() == SCHEDULES,
             timeout=60, what="every staged run completed")
    # The next slot is staged (or fired) by the ticker that came back: the slot under test is settled.
    wait_for(lambda: not Schedule.objects.filter(next_run_at__lte=slot).exists(), what="next runs moved on")
    runs = dict(Execution.objects.filter(fire_time=slot).values_list("schedule_id", "job_id"))
    cancelled = Job.objects.filter(source=Job.Source.SCHEDULE, status=Job.Status.CANCELLED).count()
    print(f"\n{SCHEDULES} schedules staged by 3 tickers for {slot:%H:%M}, all killed around it, one back 3 s "
          f"after: {len(runs)} runs of the slot, {cancelled} scheduled jobs cancelled")
    assert runs == staged
    assert Execution.objects.filter(fire_time=slot).count() == SCHEDULES
    assert cancelled == 0
