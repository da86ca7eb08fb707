"""Three tickers as separate processes, firing the same schedules: exactly one execution per
schedule and slot (the unique key on (schedule, fire time) and the row claims make the others skip)."""

from __future__ import annotations

import time
from contextlib import suppress
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count

from jobs.models import Job
from schedules.models import Execution, Schedule
from tests.fault.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(1200)]
TICKERS = 3


def _three_tickers(acme, globex, processes, *, schedules: int, minutes: int) -> None:
    now = datetime.now(UTC)
    first = now.replace(second=0, microsecond=0)
    if now.second >= 30:
        # Late in the minute, the tickers (10-20 s to start on a loaded machine) could come up after
        # the next slot, and misfire "once" would rightly fold this slot into it: start at the next one.
        first += timedelta(minutes=1)
    Schedule.objects.bulk_create(
        Schedule(team=acme if i % 2 else globex, name=f"S{i:03}", handler="pulse.noop", cron="* * * * *",
                 time_zone="UTC", overlap_policy="allow", misfire_policy="once", next_run_at=first)
        for i in range(schedules)
    )
    started, tickers_from = time.monotonic(), datetime.now(UTC)
    for _ in range(TICKERS):
        processes.start("pulse_ticker")
    slots = [first + timedelta(minutes=m) for m in range(minutes)]
    for slot in slots:
        # No raise here: a slot still short after its minute is counted as misses below, with the figures.
        with suppress(AssertionError):
            wait_for(lambda: Execution.objects.filter(fire_time=slot).count() >= schedules,
                     timeout=(slot - datetime.now(UTC)).total_seconds() + 60,
                     what=f"every schedule fired at {slot:%H:%M}")
    # Let the next slot's claims race too before the tickers stop (they are still running).
    with suppress(AssertionError):
        wait_for(lambda: not Schedule.objects.filter(next_run_at__lte=slots[-1]).exists(), what="next runs advanced")
    fired = Execution.objects.filter(fire_time__in=slots, trigger="cron")
    per_pair = list(fired.values("schedule", "fire_time").annotate(n=Count("id")).values_list("n", flat=True))
    duplicates = sum(n - 1 for n in per_pair)
    misses = schedules * minutes - len(per_pair)
    # Lag: from the slot (or from the tickers' start, for a slot already due when they started) to the insert.
    lags = sorted((created - max(fire, tickers_from)).total_seconds()
                  for fire, created in fired.values_list("fire_time", "created_at"))
    without_job = fired.filter(job__isnull=True).count()
    # Every job a schedule made belongs to exactly one execution (no job made by a ticker that lost the claim).
    scheduled_jobs = Job.objects.filter(source=Job.Source.SCHEDULE)
    orphans = scheduled_jobs.exclude(pk__in=Execution.objects.filter(job__isnull=False).values("job")).count()
    print(f"\n{TICKERS} ticker processes, {schedules} schedules, {minutes} slot(s) of a minute, "
          f"{time.monotonic() - started:.1f} s: {len(per_pair)} of {schedules * minutes} (schedule, slot) pairs fired, "
          f"executions per pair {sorted(set(per_pair))}, duplicates {duplicates}, misses {misses}; "
          f"executions without a job {without_job}, scheduled jobs {scheduled_jobs.count()} "
          f"(without an execution {orphans}); fire lag after the slot "
          f"p50 {lags[len(lags) // 2] if lags else 0:.2f} s, max {lags[-1] if lags else 0:.2f} s")
    for slot in slots:  # the first slot's lag includes the tickers' start-up
        times = sorted(fired.filter(fire_time=slot).values_list("created_at", flat=True))
        late = f", {(times[0] - max(slot, tickers_from)).total_seconds():.2f} to " \
               f"{(times[-1] - max(slot, tickers_from)).total_seconds():.2f} s after it" if times else ""
        print(f"  slot {slot:%H:%M}: {len(times)} executions{late}")
    assert misses == 0
    assert duplicates == 0 and set(per_pair) == {1}
    assert without_job == 0 and orphans == 0


def test_three_ticker_processes_fire_each_schedule_once_for_the_slot(acme, globex, processes):
    _three_tickers(acme, globex, processes, schedules=100, minutes=1)


@pytest.mark.slow
def test_three_ticker_processes_fire_500_schedules_once_per_slot_for_ten_minutes(acme, globex, processes):
    _three_tickers(acme, globex, processes, schedules=500, minutes=10)
