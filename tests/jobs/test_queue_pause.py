"""Pausing the queue: running jobs finish, nothing new starts (held `queue_paused`), resume
releases; team admins pause their team, operators one handler everywhere or every team."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs.models import Job, QueuePause
from jobs.runner import Outcome, claim, run_job, settle
from jobs.pausing import queue_pause, queue_resume
from pulse_site.live.models import Event
from tests.conftest import token_client
from tests.jobs.test_admin import staff_client

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def status_of(job: Job) -> str:
    job.refresh_from_db()
    return job.status


def test_a_paused_teams_jobs_wait_with_who_and_why_and_run_after_the_resume(alice, acme, submit):
    response = session(alice).post("/api/v1/queue/pause/", {"reason": "database migration"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert (body["scope"], body["reason"], body["by"], body["ended_at"]) == ("team", "database migration", "alice", None)

    job = submit("pulse.noop")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.PAUSED
    reason = job.hold_reasons[0]
    assert (reason["kind"], reason["by"], reason["pause"]) == ("queue_paused", "alice", body["id"])
    assert reason["message"] == "The team's queue is paused by alice: database migration"

    resumed = session(alice).post("/api/v1/queue/resume/")
    assert resumed.status_code == 200 and resumed.json()["ended_by"] == "alice"
    assert status_of(job) == Status.QUEUED
    run_job(job.public_id)
    assert status_of(job) == Status.COMPLETED
    kinds = list(Event.objects.filter(team=acme, kind__startswith="queue.").values_list("kind", flat=True))
    assert kinds == ["queue.paused", "queue.resumed"]


def test_a_running_job_finishes_while_the_queue_is_paused(alice, acme, submit):
    job = submit("pulse.noop")
    claim(job.public_id)
    queue_pause(scope="team", team=acme, reason="maintenance", by="alice")
    settle(job_pk=job.pk, attempt=1, outcome=Outcome(ok=True))
    assert status_of(job) == Status.COMPLETED


def test_scheduled_jobs_are_still_created_and_wait(acme, submit):
    queue_pause(scope="team", team=acme, reason="maintenance", by="alice")
    job = submit("pulse.noop", source=Job.Source.SCHEDULE)
    assert job.status == Status.QUEUED
    run_job(job.public_id)
    assert status_of(job) == Status.PAUSED


def test_the_queue_state_lists_the_pauses_in_force(alice, acme):
    client = token_client(acme, "read")
    assert client.get("/api/v1/queue/").json() == {"paused": False, "pauses": []}
    pause = queue_pause(scope="team", team=acme, reason="maintenance", by="alice")
    body = client.get("/api/v1/queue/").json()
    assert body["paused"] is True and [p["id"] for p in body["pauses"]] == [pause.public_id]


def test_a_member_viewer_or_read_token_cannot_pause_and_nothing_changes(bob, vic, acme):
    assert session(bob).post("/api/v1/queue/pause/", {"reason": "x"}, format="json").status_code == 403
    assert session(vic).post("/api/v1/queue/pause/", {"reason": "x"}, format="json").status_code == 403
    assert token_client(acme, "read").post("/api/v1/queue/pause/", {"reason": "x"}, format="json").status_code == 403
    assert QueuePause.objects.count() == 0


def test_a_read_write_token_can_pause_and_resume_for_a_deploy(acme):
    client = token_client(acme, "write")
    assert client.post("/api/v1/queue/pause/", {"reason": "deploy"}, format="json").json()["by"] == "token write token"
    assert client.post("/api/v1/queue/resume/").status_code == 200


def test_pausing_twice_or_resuming_a_running_queue_is_a_conflict(alice, acme):
    client = session(alice)
    refused = client.post("/api/v1/queue/resume/")
    assert (refused.status_code, refused.json()["error"]["code"], refused.json()["error"]["message"]) == (
        409, "queue_not_paused", "The team's queue is not paused.")
    client.post("/api/v1/queue/pause/", {"reason": "one"}, format="json")
    second = client.post("/api/v1/queue/pause/", {"reason": "two"}, format="json")
    assert second.status_code == 409 and second.json()["error"]["code"] == "queue_already_paused"
    assert QueuePause.objects.count() == 1


def test_resuming_a_queue_only_an_operator_paused_says_who_can(alice, acme):
    """Not "not paused" while every job waits: the team's Resume cannot end an operator's pause,
    and the refusal says whose it is and why."""
    queue_pause(scope="global", reason="Database maintenance", by="operator")
    refused = session(alice).post("/api/v1/queue/resume/")
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "queue_not_paused")
    assert refused.json()["error"]["message"] == (
        "The team has not paused its queue; an operator's pause holds it (every team: Database "
        "maintenance), which only operators end.")
    assert QueuePause.objects.get().ended_at is None


def test_a_pause_needs_a_reason(alice, acme):
    response = session(alice).post("/api/v1/queue/pause/", {"reason": "  "}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["error"]["fields"]


def test_charlies_pause_and_resume_touch_only_globex(alice, charlie, acme, globex, submit):
    queue_pause(scope="team", team=acme, reason="acme maintenance", by="alice")
    client = session(charlie)
    assert client.get("/api/v1/queue/").json() == {"paused": False, "pauses": []}
    assert client.post("/api/v1/queue/resume/").status_code == 409
    client.post("/api/v1/queue/pause/", {"reason": "globex"}, format="json")
    client.post("/api/v1/queue/resume/")
    assert QueuePause.objects.get(team=acme).ended_at is None
    job = submit("pulse.noop")
    run_job(job.public_id)
    assert status_of(job) == Status.PAUSED
    assert b"acme maintenance" not in client.get("/queue/").content
    assert charlie_post_resume_changes_nothing(charlie, acme)


def charlie_post_resume_changes_nothing(charlie, acme) -> bool:
    from django.test import Client

    client = Client()
    client.force_login(charlie)
    client.post("/queue/resume/")
    return QueuePause.objects.get(team=acme).ended_at is None


def test_the_banner_shows_who_and_why_on_every_page_of_the_team(alice_client, bob_client, charlie_client, acme):
    queue_pause(scope="team", team=acme, reason="database migration", by="alice")
    for path in ("/", "/jobs/", "/schedules/", "/budget/", "/team/"):
        page = alice_client.get(path).content.decode()
        assert 'id="queue-banner"' in page, path
        assert "The team's queue paused by alice: database migration" in page, path
    assert b"database migration" in bob_client.get("/jobs/").content
    assert b'id="queue-banner"' not in charlie_client.get("/jobs/").content


def test_the_dashboard_buttons_pause_and_resume_for_an_admin_only(alice_client, bob_client, acme, submit):
    assert bob_client.post("/queue/pause/", {"reason": "no"}).status_code == 403
    assert QueuePause.objects.count() == 0
    assert b'id="queue-pause"' not in bob_client.get("/queue/").content
    assert alice_client.post("/queue/pause/", {"reason": "upgrade"}).status_code == 302
    job = submit("pulse.noop")
    run_job(job.public_id)
    page = alice_client.get("/queue/").content.decode()
    assert "1 job waits for the resume." in page and 'id="queue-resume"' in page
    assert alice_client.post("/queue/resume/").status_code == 302
    assert QueuePause.objects.get().ended_by == "alice"
    assert status_of(job) == Status.QUEUED
    again = alice_client.post("/queue/resume/", follow=True).content.decode()
    assert "The team&#x27;s queue is not paused." in again and 'id="queue-pause"' in again


def test_an_operator_pauses_every_team_in_admin_and_resumes_with_the_action(acme, globex, submit):
    client = staff_client()
    response = client.post("/admin/jobs/queuepause/add/", {"scope": "global", "handler": "", "reason": "DB failover"})
    assert response.status_code == 302
    pause = QueuePause.objects.get()
    assert (pause.scope, pause.paused_by) == ("global", "admin operator")
    ours, theirs = submit("pulse.noop"), submit("pulse.noop", team=globex)
    run_job(ours.public_id)
    run_job(theirs.public_id)
    assert (status_of(ours), status_of(theirs)) == (Status.PAUSED, Status.PAUSED)
    assert ours.hold_reasons[0]["message"] == "Every team's queue is paused by admin operator: DB failover"

    client.post("/admin/jobs/queuepause/", {"action": "resume_selected", "_selected_action": [pause.pk]})
    assert (status_of(ours), status_of(theirs)) == (Status.QUEUED, Status.QUEUED)

    again = client.post("/admin/jobs/queuepause/", {"action": "resume_selected", "_selected_action": [pause.pk]},
                        follow=True).content.decode()
    assert "Resumed: 0 pauses." in again and "Left as they were: 1 of the selected pauses (they had already ended)." in again
    assert QueuePause.objects.get().ended_by == "admin operator"


def test_an_operator_pause_of_one_handler_holds_only_its_jobs(acme, submit):
    pause = queue_pause(scope="handler", handler="pulse.noop", reason="vendor outage", by="operator")
    held, other = submit("pulse.noop"), submit("demo.report", {"delay": 0})
    run_job(held.public_id)
    run_job(other.public_id)
    assert (status_of(held), status_of(other)) == (Status.PAUSED, Status.COMPLETED)
    queue_resume(pause=pause, by="operator")
    assert status_of(held) == Status.QUEUED


def test_the_admin_refuses_a_second_global_pause(acme):
    queue_pause(scope="global", reason="one", by="operator")
    response = staff_client().post("/admin/jobs/queuepause/add/", {"scope": "global", "handler": "", "reason": "two"})
    assert response.status_code == 200  # the form again, with the error
    assert QueuePause.objects.count() == 1


def test_an_operator_pause_reaches_the_dashboards_of_teams_with_nothing_running(acme, globex):
    # Globex has no job at all: its open pages must still show the banner come and go live.
    pause = queue_pause(scope="global", reason="database upgrade", by="ops")
    queue_resume(pause=pause, by="ops")
    for team in (acme, globex):
        kinds = list(Event.objects.filter(team=team, kind__startswith="queue.").order_by("id")
                     .values_list("kind", flat=True))
        assert kinds == ["queue.paused", "queue.resumed"]


def test_a_claim_reads_the_pauses_in_the_same_statement_as_the_job(acme, submit):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    job = submit("pulse.noop")
    with CaptureQueriesContext(connection) as queries:
        assert claim(job.public_id) is not None
    reading_pauses = [q["sql"] for q in queries.captured_queries if '"jobs_queuepause"' in q["sql"]]
    assert len(reading_pauses) == 1 and reading_pauses[0].startswith('SELECT "jobs_job"."id"')


@pytest.mark.parametrize(("form", "field", "reason"), [
    ({"scope": "handler", "handler": "pulse.nope"}, "handler", "Unknown handler 'pulse.nope'."),
    ({"scope": "team", "handler": ""}, "team", "A team pause needs the team."),
    ({"scope": "handler", "handler": ""}, "handler", "A handler pause needs the handler's name."),
], ids=["unknown-handler", "team-without-team", "handler-without-name"])
def test_the_admin_names_the_field_of_a_pause_that_would_hold_nothing(acme, form, field, reason):
    """A typo in a handler's name paused nothing while the operator believed it paused; a missing
    team or handler read "Constraint queuepause_scope_fields is violated"."""
    response = staff_client().post("/admin/jobs/queuepause/add/", {"reason": "vendor outage", **form})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {field: [reason]}
    assert QueuePause.objects.count() == 0


def test_a_handler_or_team_given_beside_another_scope_is_not_kept(acme):
    response = staff_client().post("/admin/jobs/queuepause/add/", {"scope": "global", "team": acme.pk,
                                                                   "handler": "pulse.noop", "reason": "failover"})

    assert response.status_code == 302
    assert list(QueuePause.objects.values_list("scope", "team", "handler")) == [("global", None, "")]
