"""Retention per team: a team's owners and admins set how long its finished jobs, executions and
events are kept (the page and the API); the pruner follows each team's ages, the deployment's
defaults for the rest; nothing queued, held or running goes, whatever the age; a row another
transaction holds is skipped, never waited for."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from jobs.models import Job
from jobs.retention import jobs_prune
from jobs.services import job_submit
from pulse_site.live.models import Event
from pulse_site.live.relay import events_prune
from pulse_site.teams.models import Team
from pulse_site.teams.services import team_update
from schedules.models import Execution
from schedules.retention import executions_prune
from schedules.services import schedule_create, schedule_trigger

Status = Job.Status


def finished_job(team: Team, days_ago: float, status: str = Status.COMPLETED) -> Job:
    job = job_submit(team=team, handler="pulse.noop", payload={}, source="api").job
    final = status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    Job.objects.filter(pk=job.pk).update(status=status,
                                         completed_at=timezone.now() - timedelta(days=days_ago) if final else None)
    return job


def exists(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db
def test_a_teams_own_job_retention_overrides_the_default_for_that_team_only(acme, globex):
    team_update(team=acme, changes={"job_retention_days": 7}, by=None)
    acme_old, acme_young = finished_job(acme, 8), finished_job(acme, 6)
    globex_old, globex_older = finished_job(globex, 8), finished_job(globex, 31)
    assert jobs_prune(older_than_days=30) == 2
    assert [exists(j) for j in (acme_old, acme_young, globex_old, globex_older)] == [False, True, True, False]


@pytest.mark.django_db
def test_a_longer_team_retention_keeps_what_the_default_would_prune(acme):
    team_update(team=acme, changes={"job_retention_days": 365}, by=None)
    kept = finished_job(acme, 200)
    assert jobs_prune(older_than_days=30) == 0 and exists(kept)


@pytest.mark.django_db
def test_nothing_queued_held_or_running_is_pruned_even_with_a_one_day_retention(acme):
    team_update(team=acme, changes={"job_retention_days": 1}, by=None)
    live = [finished_job(acme, 400, status) for status in (Status.QUEUED, Status.PAUSED, Status.RUNNING)]
    Job.objects.filter(pk__in=[j.pk for j in live]).update(created_at=timezone.now() - timedelta(days=400))
    gone = finished_job(acme, 2, Status.FAILED)
    assert jobs_prune(older_than_days=30) == 1
    assert [exists(j) for j in live] == [True, True, True] and not exists(gone)


@pytest.mark.django_db
def test_executions_and_events_follow_each_teams_own_age(acme, globex):
    team_update(team=acme, changes={"execution_retention_days": 5, "event_retention_days": 2}, by=None)
    long_ago = timezone.now() - timedelta(days=6)
    executions = {}
    for team in (acme, globex):
        schedule = schedule_create(team=team, name="Nightly", handler="pulse.noop", cron="0 3 * * *",
                                   time_zone="UTC", overlap_policy="allow")
        executions[team.pk] = schedule_trigger(schedule=schedule)
        Execution.objects.filter(pk=executions[team.pk].pk).update(fire_time=long_ago, finished_at=long_ago)
    assert executions_prune(older_than_days=90) == 1
    assert list(Execution.objects.values_list("team_id", flat=True)) == [globex.pk]

    Event.objects.update(created_at=timezone.now() - timedelta(days=3))
    acme_new = Event.objects.create(team=acme, kind="job.updated", subject="x")
    globex_before = Event.objects.filter(team=globex).count()
    events_prune(older_than_days=7)
    assert list(Event.objects.filter(team=acme).values_list("pk", flat=True)) == [acme_new.pk]
    assert Event.objects.filter(team=globex).count() == globex_before


@pytest.mark.django_db
def test_empty_goes_back_to_the_default_and_bad_ages_name_the_field(acme):
    team_update(team=acme, changes={"job_retention_days": "14"}, by=None)
    assert Team.objects.get(pk=acme.pk).retention_days("job") == 14
    team_update(team=acme, changes={"job_retention_days": ""}, by=None)
    assert Team.objects.get(pk=acme.pk).job_retention_days is None
    assert Team.objects.get(pk=acme.pk).retention_days("job") == 30
    from pulse_site.errors import ValidationError

    for bad in (0, -1, 3651, 1.5, True, "ten", [7]):
        with pytest.raises(ValidationError) as caught:
            team_update(team=acme, changes={"event_retention_days": bad}, by=None)
        assert list(caught.value.fields) == ["event_retention_days"]
    assert Team.objects.get(pk=acme.pk).event_retention_days is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_job_row_another_transaction_holds_is_skipped_not_waited_for(acme, settings):
    if not settings.IS_POSTGRES:
        pytest.skip("row locks: SQLite locks the whole file, PostgreSQL locks rows (SKIP LOCKED)")
    held, free = finished_job(acme, 40), finished_job(acme, 40)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                list(Job.objects.select_for_update().filter(pk=held.pk))
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        assert jobs_prune(older_than_days=30) == 1  # returns at once: the held row is left for later
        assert exists(held) and not exists(free)
    finally:
        release.set()
        holder.join()
    assert jobs_prune(older_than_days=30) == 1 and not exists(held)


# --- The API and the page ----------------------------------------------------------------------


@pytest.mark.django_db
def test_an_owner_sets_and_resets_retention_over_the_api(alice_client, acme):
    changed = alice_client.patch("/api/v1/team/", {"job_retention_days": 14, "event_retention_days": 3},
                                 content_type="application/json")
    assert changed.status_code == 200
    body = changed.json()
    assert (body["job_retention_days"], body["execution_retention_days"], body["event_retention_days"]) == (14, None, 3)
    assert body["retention"] == {"job_days": 14, "execution_days": 90, "event_days": 3}
    reset = alice_client.patch("/api/v1/team/", {"job_retention_days": None}, content_type="application/json")
    assert reset.json()["retention"] == {"job_days": 30, "execution_days": 90, "event_days": 3}
    assert Event.objects.filter(team=acme, kind="team.retention").count() == 2


@pytest.mark.django_db
def test_a_bad_age_over_the_api_is_a_400_naming_the_field(alice_client, acme):
    response = alice_client.patch("/api/v1/team/", {"execution_retention_days": 0}, content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["execution_retention_days"]
    assert Team.objects.get(pk=acme.pk).execution_retention_days is None


@pytest.mark.django_db
def test_members_viewers_and_tokens_cannot_change_retention(bob_client, vic_client, acme_api, acme):
    for client in (bob_client, vic_client):
        response = client.patch("/api/v1/team/", {"job_retention_days": 1}, content_type="application/json")
        assert response.status_code == 403
    assert acme_api.patch("/api/v1/team/", {"job_retention_days": 1}, format="json").status_code == 403
    assert Team.objects.get(pk=acme.pk).job_retention_days is None


@pytest.mark.django_db
def test_another_teams_owner_changes_only_their_own_team(charlie_client, acme, globex):
    response = charlie_client.patch("/api/v1/team/", {"job_retention_days": 2}, content_type="application/json")
    assert response.status_code == 200
    assert Team.objects.get(pk=globex.pk).job_retention_days == 2
    assert Team.objects.get(pk=acme.pk).job_retention_days is None


@pytest.mark.django_db
def test_the_team_page_shows_retention_and_an_owner_changes_it(alice_client, bob_client, acme):
    page = alice_client.get("/team/")
    assert b'id="retention-form"' in page.content and b"default 30" in page.content
    saved = alice_client.post("/team/retention/", {"job_retention_days": "10", "execution_retention_days": "",
                                                   "event_retention_days": "5"})
    assert saved.status_code == 302
    team = Team.objects.get(pk=acme.pk)
    assert (team.job_retention_days, team.execution_retention_days, team.event_retention_days) == (10, None, 5)
    assert b'id="retention-form"' not in bob_client.get("/team/").content
    assert b"10 days" in bob_client.get("/team/").content


@pytest.mark.django_db
def test_the_page_refuses_members_and_bad_ages(alice_client, bob_client, acme):
    assert bob_client.post("/team/retention/", {"job_retention_days": "1"}).status_code == 403
    bad = alice_client.post("/team/retention/", {"job_retention_days": "0"})
    assert bad.status_code == 400 and b"greater than or equal to 1" in bad.content
    assert Team.objects.get(pk=acme.pk).job_retention_days is None
