"""Three tickers as separate processes, firing the same schedules: exactly one execution per
schedule and slot (the unique key on (schedule, fire time) and the row claims make the others skip)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Count

from schedules.models import Execution, Schedule
from tests.fault.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]
TICKERS = 3


def _three_tickers(acme, globex, processes, *, schedules: int, minutes: int) -> None:
    first = datetime.now(UTC).replace(second=0, microsecond=0)
    Schedule.objects.bulk_create(
        Schedule(team=acme if i % 2 else globex, name=f"S{i:03}", handler="pulse.noop", cron="* * * * *",
                 time_zone="UTC", overlap_policy="allow", misfire_policy="once", next_run_at=first)
        for i in range(schedules)
    )
    started = time.monotonic()
    for _ in range(TICKERS):
        processes.start("pulse_ticker")
    slots = [first + timedelta(minutes=m) for m in range(minutes)]
    for slot in slots:
        wait_for(lambda: Execution.objects.filter(fire_time=slot).count() >= schedules,
                 timeout=(slot - datetime.now(UTC)).total_seconds() + 60, what=f"every schedule fired at {slot:%H:%M}")
    # Let the next slot's claims race too before the tickers stop (they are still running).
    wait_for(lambda: not Schedule.objects.filter(next_run_at__lte=slots[-1]).exists(), what="next runs advanced")
    per_slot = (Execution.objects.filter(fire_time__in=slots).values("schedule", "fire_time")
                .annotate(n=Count("id")).values_list("n", flat=True))
    print(f"\n{TICKERS} ticker processes, {schedules} schedules, {minutes} slot(s): {len(per_slot)} (schedule, slot) "
          f"pairs, executions per pair {sorted(set(per_slot))}, {time.monotonic() - started:.1f} s")
    assert len(per_slot) == schedules * minutes
    assert set(per_slot) == {1}


def test_three_ticker_processes_fire_each_schedule_once_for_the_slot(acme, globex, processes):
    _three_tickers(acme, globex, processes, schedules=100, minutes=1)


@pytest.mark.slow
def test_three_ticker_processes_fire_500_schedules_once_per_slot_for_several_minutes(acme, globex, processes):
    _three_tickers(acme, globex, processes, schedules=500, minutes=4)
