"""What a page of the admin costs does not grow with its rows: a changelist reads its page of rows
with what each row shows in the queries it makes for one row, and a change page reads its inline
rows (a team's members and caps, a job's attempts) the same way. A column or an inline that reads
its related row once per row (an N+1) shows here as a count that grows with the rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from budgets.models import Alert, HandlerCap, Ledger, Usage
from budgets.services import budget_override_create, budget_policy_update
from jobs.models import Attempt, Job, TaskLog
from jobs.pausing import queue_pause
from pulse_site.live.models import Event
from pulse_site.notifications.models import HoldTimer
from pulse_site.notifications.services import rule_create, target_create
from pulse_site.teams.models import Team
from pulse_site.teams.services import membership_add, team_create, token_create
from schedules.models import Execution
from schedules.services import schedule_create
from tests.conftest import make_user

PULSE_APPS = {"jobs", "schedules", "budgets", "teams", "live", "notifications", "auth"}
PULSE_ADMINS = sorted(f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
                      for model in admin.site._registry if model._meta.app_label in PULSE_APPS)


def _team_with_one_of_everything(n: int) -> Team:
    """A team with a row in every table the admin lists, each pointing at the rows it shows."""
    now = timezone.now()
    team = team_create(name=f"Team {n}", owner=make_user(f"owner{n}"))
    membership_add(team=team, user=make_user(f"member{n}"), role="member", by=None)
    job = Job.objects.create(team=team, handler="pulse.noop", status="completed")
    Attempt.objects.create(job=job, number=1, outcome="completed")
    TaskLog.objects.create(job=job, stage="run", message="done")
    event = Event.objects.create(team=team, kind="job.completed", subject=job.public_id)
    Ledger.objects.create(team=team, job_id=job.public_id, attempt=1, kind="charge", amount=5)
    Usage.objects.create(team=team, kind="day", window_start=now, window_end=now + timedelta(days=1), committed=5)
    Alert.objects.create(team=team, window_kind="day", window_start=now, window_end=now, threshold=80, spent=1, limit=2)
    budget_policy_update(team=team, changes={"daily_limit": "5", "handler_caps": {"pulse.noop": {"daily": "1"}}},
                         by=None)
    budget_override_create(team=team, amount="5", expires_at=now + timedelta(hours=1), reason="incident", by=None)
    schedule = schedule_create(team=team, name="Nightly", handler="pulse.noop", cron="@daily", time_zone="UTC")
    Execution.objects.create(schedule=schedule, team=team, fire_time=now, trigger="cron", outcome="skipped", job=job)
    target = target_create(team=team, name="ops", kind="email", address="ops@example.com", by=None)
    rule = rule_create(team=team, target=target, kind="held_long", minutes=5, by=None)
    HoldTimer.objects.create(team=team, rule=rule, event_id=event.pk, job_id=job.public_id, handler="pulse.noop",
                             held_since=now, due_at=now)
    token_create(team=team, name="CI", access="write", expires_at=None, by=None)
    queue_pause(scope="team", team=team, reason="maintenance", by="alice")
    return team


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


def test_every_pulse_admin_is_measured(db):
    assert len(PULSE_ADMINS) >= 20 and "/admin/jobs/queuepause/" in PULSE_ADMINS


@pytest.mark.parametrize("url", PULSE_ADMINS)
def test_a_changelist_makes_as_many_queries_for_six_teams_rows_as_for_two(admin_client, url):
    """A queue pause's team (it may have none) and a hold timer's rule were read row by row."""
    for n in range(2):
        _team_with_one_of_everything(n)
    admin_client.get(url)  # what the first page view of a process reads once (content types, …)
    few = _queries(admin_client, url)
    for n in range(2, 6):
        _team_with_one_of_everything(n)

    assert _queries(admin_client, url) == few


@pytest.mark.parametrize("url", PULSE_ADMINS)
def test_a_change_page_makes_as_many_queries_whatever_else_is_stored(admin_client, url):
    model = next(model for model in admin.site._registry
                 if url == f"/admin/{model._meta.app_label}/{model._meta.model_name}/")
    _team_with_one_of_everything(0)
    row = model.objects.order_by("pk").first()
    if row is None:
        pytest.skip("nothing of this kind is made here")
    page = f"{url}{row.pk}/change/"
    admin_client.get(page)
    few = _queries(admin_client, page)
    for n in range(1, 4):
        _team_with_one_of_everything(n)

    assert _queries(admin_client, page) == few


def _grow_inlines(team: Team, job: Job, start: int, count: int) -> None:
    for n in range(start, start + count):
        membership_add(team=team, user=make_user(f"user{n}"), role="member", by=None)
    Attempt.objects.bulk_create([Attempt(job=job, number=n, outcome="failed") for n in range(start, start + count)])
    HandlerCap.objects.bulk_create([HandlerCap(team=team, handler=f"handler.{n}", daily_limit=1_000_000)
                                    for n in range(start, start + count)])


@pytest.mark.parametrize("page", ["team", "job"])
def test_a_change_page_reads_its_inline_rows_in_the_same_queries_however_many(admin_client, acme, page):
    """A team's page read each member's user and team, and each cap's team, one query each; a
    job's page read its job again for each attempt."""
    job = Job.objects.create(team=acme, handler="pulse.noop", status="failed")
    url = f"/admin/teams/team/{acme.pk}/change/" if page == "team" else f"/admin/jobs/job/{job.pk}/change/"
    _grow_inlines(acme, job, 1, 2)
    admin_client.get(url)
    few = _queries(admin_client, url)
    _grow_inlines(acme, job, 3, 8)

    assert _queries(admin_client, url) == few
