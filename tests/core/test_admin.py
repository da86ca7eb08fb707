"""The admin for operators: what a staff member may do follows their model permissions (viewing
is not changing), and every action is in Django's admin log, naming who did it to what."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.test import Client

from jobs.models import Job, QueuePause
from jobs.pausing import queue_pause
from jobs.services import job_submit
from pulse_site.live.models import Event
from pulse_site.teams.models import ApiToken, Membership
from pulse_site.teams.services import token_create
from schedules.models import Schedule
from schedules.services import schedule_create
from tests.conftest import make_user, staff_client


def _job(team) -> Job:
    return job_submit(team=team, handler="pulse.noop", payload={}, source="api").job


def _schedule(team) -> Schedule:
    return schedule_create(team=team, name="Nightly", handler="pulse.noop", cron="@daily", time_zone="UTC")


def _pause(team) -> QueuePause:
    return queue_pause(scope="team", team=team, reason="maintenance", by="alice")


def _token(team) -> ApiToken:
    return token_create(team=team, name="CI", access="write", expires_at=None, by=None)[0]


def _membership(team) -> Membership:
    return Membership.objects.get(team=team, user__username="bob")


def _waiting_job(team) -> Job:
    from datetime import timedelta

    from django.utils import timezone

    job = _job(team)
    Job.objects.filter(pk=job.pk).update(run_after=timezone.now() + timedelta(hours=1))
    job.refresh_from_db()
    return job


def _override(team):
    from datetime import timedelta

    from django.utils import timezone

    from budgets.services import budget_override_create

    return budget_override_create(team=team, amount="5", expires_at=timezone.now() + timedelta(hours=1),
                                  reason="incident", by=None)


# (changelist, action, make the row, the row's state that the action would change)
ACTIONS = {
    "job start now": ("/admin/jobs/job/", "action_start_now", _waiting_job, lambda job: job.run_after),
    "override end": ("/admin/budgets/override/", "end_selected", _override, lambda o: o.expires_at),
    "job cancel": ("/admin/jobs/job/", "action_cancel", _job, lambda job: job.status),
    "schedule disable": ("/admin/schedules/schedule/", "action_disable", _schedule, lambda s: s.enabled),
    "queue resume": ("/admin/jobs/queuepause/", "resume_selected", _pause, lambda p: p.ended_at),
    "token revoke": ("/admin/teams/apitoken/", "revoke", _token, lambda t: t.revoked_at),
    "membership role": ("/admin/teams/membership/", "make_owner", _membership, lambda m: m.role),
}



@pytest.mark.parametrize("case", list(ACTIONS), ids=list(ACTIONS))
def test_a_staff_member_who_may_only_view_is_offered_no_action_and_runs_none(acme, case):
    url, action, make, state = ACTIONS[case]
    row = make(acme)
    before = state(row)
    model = type(row)._meta.model_name
    client = staff_client("watcher", f"view_{model}")

    page = client.get(url)
    response = client.post(url, {"action": action, "_selected_action": [row.pk]})

    assert page.status_code == 200 and f'value="{action}"' not in page.content.decode()
    assert response.status_code in (200, 302)
    row.refresh_from_db()
    assert state(row) == before


def test_a_staff_member_without_permissions_sees_no_team_data_and_changes_nothing(acme):
    job = _job(acme)
    client = staff_client("nobody")

    index = client.get("/admin/").content.decode()
    statuses = [client.get(url).status_code for url in ("/admin/jobs/job/", f"/admin/jobs/job/{job.pk}/change/",
                                                        "/admin/teams/team/", "/admin/budgets/ledger/",
                                                        "/admin/live/event/")]
    refused = client.post("/admin/jobs/job/", {"action": "action_cancel", "_selected_action": [job.pk]})

    assert "Acme" not in index and "/admin/jobs/job/" not in index
    assert statuses == [403] * 5
    assert refused.status_code == 403
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED
@pytest.mark.parametrize("case", list(ACTIONS), ids=list(ACTIONS))
def test_an_admin_action_is_in_the_admin_log_naming_the_operator_and_the_row(acme, case):
    url, action, make, state = ACTIONS[case]
    row = make(acme)
    operator = make_user("operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(operator)

    client.post(url, {"action": action, "_selected_action": [row.pk]})

    entries = list(LogEntry.objects.values_list("user__username", "action_flag", "object_id", "change_message"))
    assert [entry[:3] for entry in entries] == [("operator", CHANGE, str(row.pk))]
    assert entries[0][3]  # says which action


def _finished_job(team) -> Job:
    job = _job(team)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.COMPLETED)
    job.refresh_from_db()
    return job


def _target(team):
    from pulse_site.notifications.services import target_create

    return target_create(team=team, name="ops", kind="email", address="ops@example.com", by=None)


# (changelist, action, make the row): the services delete a schedule by its queryset, a job and a
# target by the row itself (which Django then leaves without a pk).
DELETES = {
    "schedule": ("/admin/schedules/schedule/", "action_delete", _schedule),
    "job": ("/admin/jobs/job/", "action_delete_finished", _finished_job),
    "target": ("/admin/notifications/target/", "action_delete", _target),
}


@pytest.mark.parametrize("case", list(DELETES), ids=list(DELETES))
def test_a_delete_action_is_in_the_admin_log_as_a_deletion_of_that_row(acme, case):
    url, action, make = DELETES[case]
    row = make(acme)
    pk, text = row.pk, str(row)
    operator = make_user("operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(operator)

    client.post(url, {"action": action, "_selected_action": [pk]})

    assert not type(row).objects.filter(pk=pk).exists()
    entries = list(LogEntry.objects.values_list("user__username", "action_flag", "object_id", "object_repr"))
    assert entries == [("operator", DELETION, str(pk), text)]  # it read as a change; then, of no row ("None")


def _jobs(team, count: int) -> list[Job]:
    return Job.objects.bulk_create([Job(team=team, handler="pulse.noop", status="completed",
                                        public_id=f"JB_{n:026d}") for n in range(count)])


def _grow(table: str, team, count: int) -> None:
    from budgets.models import Ledger
    from jobs.models import Attempt, TaskLog
    from pulse_site.live.models import Event

    if table == "job":
        _jobs(team, count)
    elif table == "attempt":
        Attempt.objects.bulk_create([Attempt(job=job, number=1, outcome="succeeded") for job in _jobs(team, count)])
    elif table == "tasklog":
        TaskLog.objects.bulk_create([TaskLog(job=job, stage="run", message="m") for job in _jobs(team, count)])
    elif table == "event":
        Event.objects.bulk_create([Event(team=team, kind="job.completed", subject=f"JB_{n}") for n in range(count)])
    elif table == "ledger":
        Ledger.objects.bulk_create([Ledger(team=team, job_id=f"JB_{n}", attempt=1, kind="charge", amount=1)
                                    for n in range(count)])


@pytest.mark.parametrize("url", ["/admin/jobs/job/", "/admin/jobs/attempt/", "/admin/jobs/tasklog/",
                                 "/admin/live/event/", "/admin/budgets/ledger/", "/admin/schedules/execution/",
                                 "/admin/budgets/usage/"])
def test_the_lists_of_unbounded_tables_neither_count_all_their_rows_nor_read_every_distinct_value(
        admin_client, acme, monkeypatch, url):
    """Each was a COUNT(*) of the whole table (two, for events and the ledger) and a SELECT DISTINCT
    over it for a filter, on every page view."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from pulse_site import admin_lists

    monkeypatch.setattr(admin_lists, "COUNT_CAP", 5)
    table = url.split("/")[3]
    _grow(table, acme, 7)

    with CaptureQueriesContext(connection) as queries:
        page = admin_client.get(url)

    assert page.status_code == 200
    scans = [q["sql"] for q in queries.captured_queries
             if "DISTINCT" in q["sql"] or ("COUNT(" in q["sql"] and "LIMIT" not in q["sql"])]
    assert scans == []
    if table in ("job", "attempt", "tasklog", "event", "ledger"):
        assert "more than 5 " in page.content.decode()


def test_the_event_list_shows_the_newest_events_first(admin_client, acme):
    from pulse_site.live.models import Event

    newest = Event.objects.create(team=acme, kind="job.completed", subject="JB_newest")

    page = admin_client.get("/admin/live/event/").content.decode()

    first_row = page.split('<tbody>')[1].split("</tr>")[0]
    assert newest.subject in first_row


# --- Actions on a whole long list ---------------------------------------------------------------


def _job_n(team, n: int) -> Job:
    return _job(team)


def _schedule_n(team, n: int) -> Schedule:
    return schedule_create(team=team, name=f"Nightly {n}", handler="pulse.noop", cron="@daily", time_zone="UTC")


def _pause_n(team, n: int) -> QueuePause:
    from pulse_site.teams.services import team_create

    return queue_pause(scope="team", team=team_create(name=f"Paused {n}"), reason="maintenance", by="alice")


def _token_n(team, n: int) -> ApiToken:
    return token_create(team=team, name=f"CI {n}", access="write", expires_at=None, by=None)[0]


def _membership_n(team, n: int) -> Membership:
    return Membership.objects.get(team=team, user__username=["bob", "vic", "alice"][n])


def _override_n(team, n: int):
    from datetime import timedelta

    from django.utils import timezone

    from budgets.services import budget_override_create

    return budget_override_create(team=team, amount="5", expires_at=timezone.now() + timedelta(hours=1),
                                  reason=f"incident {n}", by=None)


def _target_n(team, n: int):
    from pulse_site.notifications.services import target_create

    return target_create(team=team, name=f"ops {n}", kind="email", address="ops@example.com", by=None)


def _exists_as_it_was(row) -> tuple:
    """The row as stored (None: gone), for "nothing changed"."""
    stored = type(row).objects.filter(pk=row.pk).values().first()
    return tuple(sorted(stored.items())) if stored else None


# One of each helper that runs a service per row (admin_actions.service_action and the teams',
# pauses' and overrides' own loops before): (changelist, action, make the n-th row, noun).
PER_ROW = {
    "job cancel": ("/admin/jobs/job/", "action_cancel", _job_n, "jobs"),
    "schedule run now": ("/admin/schedules/schedule/", "action_run_now", _schedule_n, "schedules"),
    "queue resume": ("/admin/jobs/queuepause/", "resume_selected", _pause_n, "pauses"),
    "token revoke": ("/admin/teams/apitoken/", "revoke", _token_n, "tokens"),
    "membership role": ("/admin/teams/membership/", "make_owner", _membership_n, "memberships"),
    "override end": ("/admin/budgets/override/", "end_selected", _override_n, "overrides"),
    "target delete": ("/admin/notifications/target/", "action_delete", _target_n, "targets"),
}


@pytest.mark.parametrize("case", list(PER_ROW), ids=list(PER_ROW))
def test_an_action_on_more_rows_than_one_request_takes_is_refused_saying_how_many_and_runs_on_none(
        admin_client, acme, monkeypatch, case):
    """"Select all 100,000" then Cancel ran the service 100,000 times in one request that never
    ended (and a proxy's timeout cut it off halfway, unsaid)."""
    from pulse_site import admin_actions

    monkeypatch.setattr(admin_actions, "ACTION_MAX", 2)
    url, action, make, noun = PER_ROW[case]
    rows = [make(acme, n) for n in range(3)]
    before = [_exists_as_it_was(row) for row in rows]
    events = Event.objects.count()

    response = admin_client.post(url, {"action": action, "select_across": "1", "index": "0",
                                       "_selected_action": [rows[0].pk]}, follow=True)

    said = [str(m) for m in response.context["messages"]]
    assert len(said) == 1, said
    assert f"3 {noun} are selected" in said[0] and "at most 2" in said[0]
    assert [_exists_as_it_was(row) for row in rows] == before
    assert (Event.objects.count(), LogEntry.objects.count()) == (events, 0)


@pytest.mark.parametrize("case", list(PER_ROW), ids=list(PER_ROW))
def test_an_action_on_all_rows_of_a_list_no_longer_than_the_cap_runs_on_each(admin_client, acme, monkeypatch,
                                                                               case):
    from pulse_site import admin_actions

    url, action, make, noun = PER_ROW[case]
    rows = [make(acme, n) for n in range(2)]
    listed = type(rows[0]).objects.count()  # every row of the list (Acme's three memberships)
    monkeypatch.setattr(admin_actions, "ACTION_MAX", listed)

    response = admin_client.post(url, {"action": action, "select_across": "1", "index": "0",
                                       "_selected_action": [rows[0].pk]}, follow=True)

    said = [str(m) for m in response.context["messages"]]
    assert said == [said[0]] and said[0].endswith(f": {listed} {noun}."), said
    assert LogEntry.objects.count() == listed


def test_the_refusal_of_a_long_job_list_names_the_command_that_acts_on_any_number(admin_client, acme, monkeypatch):
    from pulse_site import admin_actions

    monkeypatch.setattr(admin_actions, "ACTION_MAX", 1)
    rows = [_job(acme), _job(acme)]

    response = admin_client.post("/admin/jobs/job/", {"action": "action_cancel", "select_across": "1", "index": "0",
                                                      "_selected_action": [rows[0].pk]}, follow=True)

    (said,) = [str(m) for m in response.context["messages"]]
    assert "manage.py pulse_jobs_bulk" in said


def test_jobs_that_arrive_between_the_actions_count_and_its_reading_are_not_run_past_the_cap(
        admin_client, acme, monkeypatch):
    """The action counted the selection, then read it again to act on it, unbounded: a "select all"
    of queued jobs counted at the cap and read a moment later, as submits went on, ran the service on
    however many had come in between, in the one request the cap is there to bound."""
    import sys

    from django.db import connection

    from pulse_site import admin_actions

    monkeypatch.setattr(admin_actions, "ACTION_MAX", 2)
    rows = [_job(acme), _job(acme)]
    arrived: list[Job] = []
    started = []

    def submits_go_on(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        frame, acting = sys._getframe(), False
        while frame is not None and not acting:
            acting = frame.f_code.co_name == "act_on_selected"
            frame = frame.f_back
        if acting and not started:  # after the action's first read of the selection
            started.append(True)
            arrived.extend(_job(acme) for _ in range(3))  # committed by other requests meanwhile
        return result

    with connection.execute_wrapper(submits_go_on):
        response = admin_client.post("/admin/jobs/job/", {"action": "action_cancel", "select_across": "1",
                                                          "index": "0", "_selected_action": [rows[0].pk]},
                                     follow=True)

    said = [str(m) for m in response.context["messages"]]
    assert len(arrived) == 3 and len(said) == 1, said
    # The two selected (PostgreSQL has read its result when the query returns), or none, refused as
    # five (SQLite reads its result as it is fetched, the late jobs with it); never the late ones.
    if cancelled := set(Job.objects.filter(status=Job.Status.CANCELLED)):
        assert (cancelled, said) == (set(rows), ["Cancel: 2 jobs."])
    else:
        assert said[0].startswith("Cancel was not run: 5 jobs are selected"), said


def test_the_history_tables_cannot_be_deleted_from_in_the_admin_by_row_or_by_selection(admin_client, acme):
    """Attempts, log lines, runs, events, the ledger and usage go by retention (a job with its own,
    through job_delete): Django's "delete selected" ran uncapped over a whole list."""
    from django.contrib import admin as django_admin

    from pulse_site.admin_lists import LargeTableAdmin

    job_submit(team=acme, handler="pulse.noop", payload={}, source="api")  # a job and its event
    large = [(model, model_admin) for model, model_admin in django_admin.site._registry.items()
             if isinstance(model_admin, LargeTableAdmin)]
    assert {model._meta.model_name for model, _ in large} >= {"job", "attempt", "tasklog", "execution", "event",
                                                              "ledger", "usage"}
    for model, _ in large:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert 'value="delete_selected"' not in response.content.decode(), url
        row = model.objects.first()
        if row is not None:
            assert admin_client.post(f"{url}{row.pk}/delete/", {"post": "yes"}).status_code == 403, url
            assert model.objects.filter(pk=row.pk).exists(), url


# --- History is read, not saved ---------------------------------------------------------------


def _history_rows(team) -> dict:
    from jobs.models import Attempt, TaskLog
    from schedules.models import Execution

    job = _job(team)
    schedule = _schedule(team)
    return {
        "/admin/jobs/job/": job,
        "/admin/jobs/attempt/": Attempt.objects.create(job=job, number=1),
        "/admin/jobs/tasklog/": TaskLog.objects.create(job=job, stage="run", message="started"),
        "/admin/schedules/execution/": Execution.objects.create(schedule=schedule, team=team, fire_time=job.created_at,
                                                                trigger="cron", outcome="skipped"),
        "/admin/live/event/": Event.objects.filter(subject=job.public_id).get(),
    }


@pytest.mark.parametrize("url", ["/admin/jobs/job/", "/admin/jobs/attempt/", "/admin/jobs/tasklog/",
                                 "/admin/schedules/execution/", "/admin/live/event/"])
def test_a_history_rows_page_offers_no_save_and_a_save_posted_is_refused(admin_client, acme, url):
    """Every field read-only, the page still offered Save: a raw save of the whole row as read."""
    row = _history_rows(acme)[url]
    before = _exists_as_it_was(row)

    page = admin_client.get(f"{url}{row.pk}/change/")
    posted = admin_client.post(f"{url}{row.pk}/change/", {"_save": "Save"})

    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert posted.status_code == 403
    assert _exists_as_it_was(row) == before


def test_saving_a_jobs_page_never_writes_the_job_back_as_it_read_it(admin_client, acme):
    """The page's Save wrote every column of the job as the page had read it: a job a worker
    finished between that read and the write was queued again, its result undone."""
    from django.db import connection

    job = _job(acme)
    admin_wrote = []

    def job_writes(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and '"jobs_job"' in sql:
            admin_wrote.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(job_writes):
        response = admin_client.post(f"/admin/jobs/job/{job.pk}/change/", {
            "_save": "Save", "attempt_set-TOTAL_FORMS": "0", "attempt_set-INITIAL_FORMS": "0"})

    assert response.status_code == 403
    assert admin_wrote == []


def _hold_timer(team):
    from django.utils import timezone

    from pulse_site.notifications.models import HoldTimer
    from pulse_site.notifications.services import rule_create

    job = _job(team)
    rule = rule_create(team=team, target=_target(team), kind="held_long", minutes=5, by=None)
    event = Event.objects.filter(subject=job.public_id).first()
    return HoldTimer.objects.create(team=team, rule=rule, event_id=event.pk, job_id=job.public_id,
                                    handler="pulse.noop", held_since=timezone.now(), due_at=timezone.now())


@pytest.mark.parametrize(("url", "make"), [("/admin/jobs/queuepause/", _pause),
                                           ("/admin/notifications/holdtimer/", _hold_timer)],
                         ids=["queue pause", "hold timer"])
def test_rows_only_a_service_ends_cannot_be_deleted_in_the_admin(admin_client, acme, url, make):
    """Django's delete took a pause in force without queue_resume (its held jobs not released, no
    queue.resumed event, no record left of who paused what), and a hold timer from under the match
    step that clears it."""
    row = make(acme)

    page = admin_client.get(url).content.decode()
    refused = admin_client.post(f"{url}{row.pk}/delete/", {"post": "yes"})
    selected = admin_client.post(url, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})

    assert 'value="delete_selected"' not in page
    assert refused.status_code == 403 and selected.status_code in (200, 302)
    assert type(row).objects.filter(pk=row.pk).exists()


@pytest.mark.parametrize(("family", "kinds"), [("job", {"job.created"}), ("queue", {"queue.paused"}),
                                               ("team", {"team.created"})])
def test_the_event_lists_kind_filter_finds_that_familys_events_of_every_team(admin_client, acme, globex, family,
                                                                           kinds):
    for team in (acme, globex):
        _job(team)
        _pause(team)

    response = admin_client.get("/admin/live/event/", {"family": family})

    shown = list(response.context["cl"].result_list)
    assert {event.kind for event in shown} == kinds
    assert {event.team for event in shown} == {acme, globex}


@pytest.mark.parametrize("url", ["/admin/jobs/job/", "/admin/jobs/attempt/", "/admin/jobs/tasklog/",
                                 "/admin/schedules/execution/", "/admin/live/event/"])
def test_a_history_rows_page_shows_its_times_in_its_teams_zone_and_names_it(admin_client, acme, url):
    """They read in UTC, unnamed: a Tokyo team's job made at half past midnight there read as
    the day before."""
    from datetime import UTC, datetime

    from jobs.models import Attempt, TaskLog
    from pulse_site.teams.models import Team
    from schedules.models import Execution

    Team.objects.filter(pk=acme.pk).update(time_zone="Asia/Tokyo")
    acme.refresh_from_db()
    row = _history_rows(acme)[url]
    at = datetime(2026, 12, 6, 15, 30, tzinfo=UTC)  # 00:30 on the 7th in Tokyo
    field = {Job: "created_at", Attempt: "started_at", TaskLog: "created_at", Execution: "fire_time",
             Event: "created_at"}[type(row)]
    type(row).objects.filter(pk=row.pk).update(**{field: at})

    page = admin_client.get(f"{url}{row.pk}/change/").content.decode()

    assert "Dec. 7, 2026, 12:30 a.m." in page and "Dec. 6, 2026, 3:30 p.m." not in page
    assert "times in Asia/Tokyo, the team&#x27;s zone" in page
    # A title that gives a time names its zone (a run's slot, in UTC beside "times in Asia/Tokyo").
    assert "2026-12-06 15:30 (" not in page
