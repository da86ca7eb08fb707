"""Held jobs resume when their window ends in the team's time zone, through the ticker's release."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from budgets.models import Alert
from budgets.services import budget_settle
from jobs.models import Job
from jobs.runner import claim, run_job
from pulse_site.ticker import run_once

pytestmark = pytest.mark.django_db
Status = Job.Status
travel_needs_python_clock = pytest.mark.skipif(
    "connection.vendor == 'postgresql'",
    reason="the gate reads PostgreSQL's clock, which time travel cannot move; the embedded default uses Python's",
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@travel_needs_python_clock
@pytest.mark.parametrize("zone, moment, resume, limit", [
    ("Europe/Berlin", "2026-03-29T08:00", "2026-03-29T22:00", {}),  # a 23-hour day (spring forward)
    ("America/New_York", "2026-11-01T12:00", "2026-11-02T05:00", {}),  # a 25-hour day (fall back)
    ("Asia/Kolkata", "2026-06-15T20:00", "2026-06-16T18:30", {}),  # already 16 June there
    ("UTC", "2026-06-15T23:59", "2026-06-16T00:00", {}),
    # A week starting on Sunday ends at the Sunday's local midnight, the day New York falls back.
    ("America/New_York", "2026-10-31T12:00", "2026-11-01T04:00", {"weekly_limit": "1.00", "week_start": 6}),
    # A week from Monday whose last day was 23 hours long.
    ("Europe/Berlin", "2026-03-27T12:00", "2026-03-29T22:00", {"weekly_limit": "1.00"}),
    # A month ends at the 1st's local midnight: in summer time for March in Berlin, in standard
    # time for April in Sydney (it fell back on 5 April).
    ("Europe/Berlin", "2026-03-31T21:30", "2026-03-31T22:00", {"monthly_limit": "1.00"}),
    ("Australia/Sydney", "2026-04-15T00:00", "2026-04-30T14:00", {"monthly_limit": "1.00"}),
    # Over both the day's and the week's: the week's end, when both allow it.
    ("Europe/Berlin", "2026-03-27T12:00", "2026-03-29T22:00", {"daily_limit": "1.00", "weekly_limit": "1.00"}),
])
def test_a_held_job_resumes_at_its_resume_at_in_the_team_s_zone(zone, moment, resume, limit, acme, submit,
                                                                set_policy, time_machine):
    acme.time_zone = zone
    acme.save(update_fields=["time_zone"])
    time_machine.move_to(utc(moment), tick=False)
    set_policy(acme, **(limit or {"daily_limit": "1.00"}))
    run_job(submit("1.00").public_id)
    held = submit("0.50")
    run_job(held.public_id)
    held.refresh_from_db()
    assert held.status == Status.PAUSED and held.resume_at == utc(resume)
    time_machine.move_to(utc(resume) - timedelta(seconds=1), tick=False)
    run_once(["budgets.release"])
    assert Job.objects.get(pk=held.pk).status == Status.PAUSED
    time_machine.move_to(utc(resume), tick=False)
    run_once(["budgets.release"])
    assert Job.objects.get(pk=held.pk).status == Status.QUEUED
    run_job(held.public_id)
    assert Job.objects.get(pk=held.pk).status == Status.COMPLETED


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Pacific/Chatham"])
def test_a_budget_hold_resumes_at_the_next_local_midnight_by_the_database_clock(zone, acme, submit, set_policy):
    acme.time_zone = zone
    acme.save(update_fields=["time_zone"])
    set_policy(acme, daily_limit="1.00")
    run_job(submit("1.00").public_id)
    held = submit("0.50")
    run_job(held.public_id)
    held.refresh_from_db()
    local_today = held.updated_at.astimezone(ZoneInfo(zone)).date()
    expected = datetime.combine(local_today + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo(zone))
    assert held.resume_at == expected.astimezone(UTC)


@travel_needs_python_clock
def test_a_new_window_re_arms_the_alerts(acme, submit, set_policy, time_machine):
    time_machine.move_to(utc("2026-06-15T10:00"), tick=False)
    set_policy(acme, daily_limit="1.00", alert_thresholds=[80])
    for _ in range(2):
        job = submit("0.90")
        claim(job.public_id)
        job.refresh_from_db()
        budget_settle(job=job, actual_micros=900_000)
        time_machine.move_to(utc("2026-06-16T10:00"), tick=False)
    assert list(Alert.objects.order_by("window_start").values_list("window_start", flat=True)) == [
        utc("2026-06-15T00:00"), utc("2026-06-16T00:00")]


def test_a_job_held_for_a_slot_and_money_says_only_money_once_the_slot_is_free(acme, submit, set_policy):
    """The release that finds the slot free but the money still short rewrites the reasons: the
    job's page no longer says it waits for a running job when nothing runs."""
    from jobs.services import job_release_held

    set_policy(acme, daily_limit="1.00", max_concurrent=1)
    first = submit("0.60")
    assert claim(first.public_id) is not None
    held = submit("0.60")
    claim(held.public_id)
    held.refresh_from_db()
    assert held.status == Status.PAUSED
    assert sorted(reason["kind"] for reason in held.hold_reasons) == ["budget", "concurrency"]
    first.refresh_from_db()
    budget_settle(job=first, actual_micros=600_000)
    Job.objects.filter(pk=first.pk).update(status=Status.COMPLETED)
    assert job_release_held(team_id=acme.pk) == 0
    held.refresh_from_db()
    assert held.status == Status.PAUSED
    assert [reason["kind"] for reason in held.hold_reasons] == ["budget"]
    assert "0.6 spent or reserved" in held.hold_reasons[0]["message"]
    # Said live (its open page redraws): a second job.paused of the same hold.
    from pulse_site.live.models import Event

    assert Event.objects.filter(subject=held.public_id, kind="job.paused").count() == 2
    # A release that finds the same reasons writes nothing and says nothing.
    assert job_release_held(team_id=acme.pk) == 0
    assert Event.objects.filter(subject=held.public_id, kind="job.paused").count() == 2


@travel_needs_python_clock
def test_a_new_team_time_zone_moves_the_windows_and_releases_what_its_day_allows(acme, submit, set_policy,
                                                                                 time_machine,
                                                                                 django_capture_on_commit_callbacks):
    """Spent at 09:00 UTC, 23:00 on Kiritimati (UTC+14); at 11:00 UTC its 16 June has begun."""
    from pulse_site.teams.services import team_update

    time_machine.move_to(utc("2026-06-15T09:00"), tick=False)
    set_policy(acme, daily_limit="1.00")
    run_job(submit("1.00").public_id)
    held = submit("0.50")
    run_job(held.public_id)
    assert Job.objects.get(pk=held.pk).resume_at == utc("2026-06-16T00:00")
    time_machine.move_to(utc("2026-06-15T11:00"), tick=False)
    with django_capture_on_commit_callbacks(execute=True):
        team_update(team=acme, changes={"time_zone": "Pacific/Kiritimati"}, by=None)
    assert Job.objects.get(pk=held.pk).status == Status.QUEUED
    run_job(held.public_id)
    assert Job.objects.get(pk=held.pk).status == Status.COMPLETED


def test_held_jobs_whose_resume_time_passed_under_a_full_rate_all_get_the_new_one(acme, submit, set_policy):
    """Every held job says when it resumes next, not "2 minutes ago" until it comes first in a pass."""
    from budgets.models import Start
    from django.utils import timezone

    set_policy(acme, calls_per_minute=2)
    for _ in range(2):
        run_job(submit("0").public_id)
    held = [submit("0") for _ in range(4)]
    for job in held:
        run_job(job.public_id)
    assert set(Job.objects.filter(pk__in=[j.pk for j in held]).values_list("status", flat=True)) == {Status.PAUSED}
    # The minute they waited for went by, and two other starts filled the next one.
    now = timezone.now()
    Start.objects.filter(team=acme).update(at=now - timedelta(seconds=30))
    Job.objects.filter(pk__in=[j.pk for j in held]).update(resume_at=now - timedelta(minutes=2))

    run_once(["budgets.release"])

    rows = Job.objects.filter(pk__in=[j.pk for j in held]).order_by("id")
    assert set(rows.values_list("status", flat=True)) == {Status.PAUSED}
    # The first two take the starts that leave in 30 s; the two behind them can start only once
    # those two starts have left the minute in turn, 60 s later (not with them: 2 per minute).
    freed = now - timedelta(seconds=30) + timedelta(seconds=60)
    assert [row.resume_at for row in rows] == [freed, freed, freed + timedelta(seconds=60),
                                               freed + timedelta(seconds=60)]


def test_a_release_pass_under_a_full_concurrency_cap_reads_the_held_jobs_once_not_each(acme, submit, set_policy):
    """After every settle: 50 jobs waiting for a slot cost the pass what one does."""
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    from jobs.services import job_release_held

    set_policy(acme, max_concurrent=1)
    claim(submit("0").public_id)
    held = [submit("0") for _ in range(50)]
    for job in held:
        run_job(job.public_id)
    assert Job.objects.filter(pk__in=[j.pk for j in held], status=Status.PAUSED).count() == 50

    with CaptureQueriesContext(db) as queries:
        assert job_release_held(team_id=acme.pk) == 0
    assert len(queries) < 10, [q["sql"][:80] for q in queries]
