"""The gate under real concurrency: one PostgreSQL connection per thread, a start barrier, repeated."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from budgets.models import Alert, BudgetPolicy, Start, Usage
from jobs.handlers.registry import get_handler
from jobs.models import Job
from jobs.runner import claim, execute, settle
from pulse_site.live.models import Event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="SQLite serializes every writer; races need PostgreSQL"),
]
Status = Job.Status


def run_together(calls):
    """Run each callable in its own thread and connection, all released at once by a barrier."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []
    durations: dict[int, float] = {}

    def worker(index, call):
        try:
            barrier.wait(timeout=30)
            started = time.monotonic()
            call()
            durations[index] = time.monotonic() - started
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return durations


def statuses(jobs):
    return sorted(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True))


@pytest.mark.parametrize("round_", range(3))
def test_twenty_concurrent_admissions_of_one_against_ten_admit_exactly_ten(round_, acme, globex, submit, set_policy):
    set_policy(acme, daily_limit="10.00")
    acme_jobs = [submit("1.00") for _ in range(20)]
    globex_jobs = [submit("1.00", team=globex) for _ in range(5)]
    run_together([lambda j=j: claim(j.public_id) for j in acme_jobs + globex_jobs])
    assert statuses(acme_jobs) == [Status.PAUSED] * 10 + [Status.RUNNING] * 10
    assert statuses(globex_jobs) == [Status.RUNNING] * 5  # another team's budget does not hold Globex
    day = Usage.objects.get(team=acme, scope="", kind="day")
    assert (day.committed, day.reserved) == (0, 10_000_000)
    assert BudgetPolicy.objects.get(team=acme).running == 10


def test_a_second_team_is_not_slowed_by_a_locked_first_team(acme, globex, submit, set_policy):
    from django.db import transaction

    from budgets.services import budget_admit

    set_policy(acme, daily_limit="10.00")
    globex_job = submit("1.00", team=globex)
    acme_job = submit("1.00")
    locked = threading.Event()
    release = threading.Event()

    def hold_acme():
        try:
            with transaction.atomic():
                budget_admit(job=acme_job)  # keeps Acme's policy row locked until release
                locked.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_acme)
    holder.start()
    assert locked.wait(timeout=10)
    try:
        started = time.monotonic()
        assert claim(globex_job.public_id) is not None
        assert time.monotonic() - started < 5  # it did not wait for Acme's lock (held 30 s otherwise)
    finally:
        release.set()
        holder.join(timeout=30)


@pytest.mark.parametrize("round_", range(3))
def test_five_calls_per_minute_with_twenty_concurrent_admissions_admit_exactly_five(round_, acme, submit,
                                                                                     set_policy, time_machine):
    set_policy(acme, calls_per_minute=5)
    jobs = [submit("0.01") for _ in range(20)]
    real_now = timezone.now()
    # The workers' own clock is an hour off; the database's decides.
    time_machine.move_to(real_now - timedelta(hours=1), tick=True)
    run_together([lambda j=j: claim(j.public_id) for j in jobs])
    assert statuses(jobs) == [Status.PAUSED] * 15 + [Status.RUNNING] * 5
    starts = list(Start.objects.filter(team=acme).values_list("at", flat=True))
    assert len(starts) == 5 and all(at > real_now - timedelta(seconds=5) for at in starts)
    # The k-th held in the team's order can start once k starts have left the minute: the five
    # made now, then those the five before it will make a minute later, and so on. A job held
    # before those five starts were made says the earliest they could be (never later than its
    # release, never past), still by the database's clock.
    earliest = sorted(starts)
    true = [earliest[k % 5] + timedelta(seconds=60 * (k // 5 + 1)) for k in range(15)]
    held = list(Job.objects.filter(team=acme, status=Status.PAUSED).order_by("id").values_list("resume_at", flat=True))
    assert all(real_now + timedelta(seconds=55) < at <= release for at, release in zip(held, true, strict=True))
    # The ticker's pass makes each exact.
    from jobs.services import job_release_held

    assert job_release_held(team_id=acme.pk, due_only=True) == 0
    assert list(Job.objects.filter(team=acme, status=Status.PAUSED).order_by("id")
                .values_list("resume_at", flat=True)) == true


@pytest.mark.parametrize("round_", range(3))
def test_alerts_fire_once_under_ten_concurrent_settles_crossing_eighty_percent(round_, acme, submit, set_policy):
    set_policy(acme, daily_limit="10.00")
    jobs = [submit("1.00") for _ in range(10)]
    for job in jobs:
        assert claim(job.public_id) is not None
    spec = get_handler("test.paid")

    def finish(job):
        job.refresh_from_db()
        settle(job_pk=job.pk, attempt=job.attempts, outcome=execute(job, spec))

    run_together([lambda j=j: finish(j) for j in jobs])
    assert statuses(jobs) == [Status.COMPLETED] * 10
    assert sorted(Alert.objects.filter(team=acme).values_list("threshold", flat=True)) == [80, 100]
    assert Event.objects.filter(kind="budget.alert").count() == 2
    day = Usage.objects.get(team=acme, scope="", kind="day")
    assert (day.committed, day.reserved) == (10_000_000, 0)
    assert BudgetPolicy.objects.get(team=acme).running == 0


@pytest.mark.parametrize("round_", range(3))
def test_a_job_released_for_a_slot_starts_before_jobs_submitted_after_it_whichever_worker_claims_first(
        round_, acme, submit, set_policy):
    """The settle's release sends the held job back to the queue; five jobs submitted after it
    are claimed by five other workers at the same moment as its own: the slot is its, FIFO."""
    set_policy(acme, max_concurrent=1)
    running = submit("0.10")
    assert claim(running.public_id) is not None
    held = submit("0.10")
    claim(held.public_id)
    assert statuses([held]) == [Status.PAUSED]
    running.refresh_from_db()
    settle(job_pk=running.pk, attempt=running.attempts, outcome=execute(running, get_handler("test.paid")))
    assert statuses([held]) == [Status.QUEUED]
    newer = [submit("0.10") for _ in range(5)]
    run_together([lambda j=j: claim(j.public_id) for j in [*newer, held]])
    assert statuses([held]) == [Status.RUNNING]
    assert statuses(newer) == [Status.PAUSED] * 5
    assert BudgetPolicy.objects.get(team=acme).running == 1
