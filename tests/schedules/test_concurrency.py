"""Three tickers on PostgreSQL, 500 schedules due in the same second: each slot fires exactly once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count

from jobs.models import Job
from schedules.models import Execution, Schedule
from schedules.services import TickResult, schedules_tick

pytestmark = pytest.mark.django_db(transaction=True)
SCHEDULES = 500
TICKERS = 3
CYCLES = 3


def test_three_tickers_fire_each_of_500_schedules_once_per_slot_for_several_cycles(acme, globex, settings):
    if not settings.IS_POSTGRES:
        pytest.skip("row claims between threads need PostgreSQL; SQLite serializes writers anyway")
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=CYCLES)
    Schedule.objects.bulk_create(
        Schedule(team=acme if i % 2 else globex, name=f"S{i:03}", handler="pulse.noop", cron="* * * * *",
                 time_zone="UTC", overlap_policy="allow", next_run_at=start)
        for i in range(SCHEDULES)
    )
    for cycle in range(CYCLES):
        now = start + timedelta(minutes=cycle, seconds=0.5)
        barrier = threading.Barrier(TICKERS)
        results: list[TickResult] = []
        errors: list[BaseException] = []

        def ticker() -> None:
            try:
                barrier.wait()
                results.append(schedules_tick(now=now))
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=ticker) for _ in range(TICKERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert sum(r.fired for r in results) == SCHEDULES
        assert sum(r.schedules for r in results) == SCHEDULES
        slot = start + timedelta(minutes=cycle)
        per_schedule = Execution.objects.filter(fire_time=slot).values("schedule").annotate(n=Count("id"))
        assert sorted({row["n"] for row in per_schedule}) == [1]
        assert per_schedule.count() == SCHEDULES
        assert set(Schedule.objects.values_list("next_run_at", flat=True)) == {slot + timedelta(minutes=1)}
    assert Execution.objects.count() == SCHEDULES * CYCLES
    assert Job.objects.filter(source="schedule").count() == SCHEDULES * CYCLES
