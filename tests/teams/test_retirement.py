"""Retiring a team: an operator winds it down for good (teams are never deleted). Acme is retired;
Globex, charlie's, is the other team that must not notice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.html import escape

from jobs.models import Job
from jobs.runner import claim
from jobs.services import job_pause, job_release_due, job_submit
from pulse_site.errors import Conflict
from pulse_site.live.models import Event
from pulse_site.teams.models import ApiToken, Team
from pulse_site.teams.services import team_reactivate, team_retire, team_work_refusal, token_create
from schedules.models import Execution, Schedule
from schedules.services import schedule_create, schedules_tick
from tests.conftest import staff_client, token_client

pytestmark = pytest.mark.django_db
Status = Job.Status


def submit(team, handler: str = "pulse.noop") -> Job:
    return job_submit(team=team, handler=handler, payload={}, source=Job.Source.API).job


def nightly(team, name: str = "Nightly", cron: str = "0 3 * * *") -> Schedule:
    return schedule_create(team=team, name=name, handler="pulse.noop", cron=cron, time_zone="UTC")


@pytest.fixture
def acme_busy(acme):
    """Acme with a queued, a held and a running job, a finished one, two schedules (one paused by a
    person) and two tokens (one revoked before)."""
    running = submit(acme, "pulse.sleep")
    assert claim(running.public_id) is not None
    held = job_pause(job=submit(acme), by="bob")
    queued = submit(acme)
    finished = submit(acme)
    Job.objects.filter(pk=finished.pk).update(status=Status.COMPLETED, completed_at=timezone.now())
    on, off = nightly(acme), nightly(acme, "Weekly")
    Schedule.objects.filter(pk=off.pk).update(enabled=False, next_run_at=None)
    working, _ = token_create(team=acme, name="ci", access="write", expires_at=None, by=None)
    gone, _ = token_create(team=acme, name="old", access="read", expires_at=None, by=None)
    ApiToken.objects.filter(pk=gone.pk).update(revoked_at=timezone.now() - timedelta(days=1))
    return {"running": running, "held": held, "queued": queued, "finished": finished, "on": on, "off": off,
            "token": working, "gone": gone}


def fresh(row):
    row.refresh_from_db()
    return row


def test_retiring_a_team_revokes_its_tokens_pauses_its_schedules_and_cancels_its_work(acme, acme_busy):
    done = team_retire(team=acme, who="admin root")
    assert (done.already, done.jobs_cancelled, done.running_told_to_stop, done.schedules_paused,
            done.tokens_revoked) == (False, 2, 1, 1, 1)
    assert done.counts() == ("2 queued or held jobs cancelled, 1 running job told to stop, 1 schedule paused, "
                             "1 API token revoked")
    team = fresh(acme)
    assert team.is_retired and team.retired_by == "admin root"
    for name in ("held", "queued"):
        job = fresh(acme_busy[name])
        assert (job.status, job.cancelled_by) == (Status.CANCELLED, "admin root: team retired")
        event = Event.objects.get(team=acme, kind="job.cancelled", subject=job.public_id)
        assert event.payload["by"] == "admin root: team retired"
    running = fresh(acme_busy["running"])
    assert (running.status, running.cancel_requested, running.cancelled_by) == (
        Status.RUNNING, True, "admin root: team retired")
    assert fresh(acme_busy["finished"]).status == Status.COMPLETED
    on, off = fresh(acme_busy["on"]), fresh(acme_busy["off"])
    assert (on.enabled, on.next_run_at, on.paused_reason) == (False, None, "team retired")
    assert (off.enabled, off.paused_reason) == (False, "")  # paused by a person before: left as it was
    assert fresh(acme_busy["token"]).revoked_at is not None
    revoked = Event.objects.get(team=acme, kind="token.revoked")
    assert revoked.payload == {"name": "ci", "by": "admin root", "why": "team retired"}
    assert Event.objects.get(team=acme, kind="team.retired").payload == {"by": "admin root"}


def test_a_retired_teams_history_stays(acme, acme_busy):
    jobs_before = set(Job.objects.filter(team=acme).values_list("public_id", flat=True))
    events_before = set(Event.objects.filter(team=acme).values_list("pk", flat=True))
    team_retire(team=acme, who="operator")
    assert set(Job.objects.filter(team=acme).values_list("public_id", flat=True)) == jobs_before
    assert events_before < set(Event.objects.filter(team=acme).values_list("pk", flat=True))
    assert Schedule.objects.filter(team=acme).count() == 2 and ApiToken.objects.filter(team=acme).count() == 2


def test_retiring_twice_records_one_retirement_and_finds_nothing_left_to_do(acme, acme_busy):
    team_retire(team=acme, who="admin root")
    again = team_retire(team=acme, who="operator")
    assert (again.already, again.jobs_cancelled, again.running_told_to_stop, again.schedules_paused,
            again.tokens_revoked) == (True, 0, 0, 0, 0)
    assert Event.objects.filter(team=acme, kind="team.retired").count() == 1
    assert fresh(acme).retired_by == "admin root"
    assert fresh(acme_busy["queued"]).cancelled_by == "admin root: team retired"


def test_another_teams_work_is_untouched(acme, acme_busy, globex):
    queued, held = submit(globex), job_pause(job=submit(globex), by="charlie")
    schedule = nightly(globex)
    token, _ = token_create(team=globex, name="globex ci", access="write", expires_at=None, by=None)
    events = Event.objects.filter(team=globex).count()
    team_retire(team=acme, who="operator")
    assert (fresh(queued).status, fresh(held).status) == (Status.QUEUED, Status.PAUSED)
    assert fresh(schedule).enabled and fresh(token).revoked_at is None and not fresh(globex).is_retired
    assert Event.objects.filter(team=globex).count() == events
    assert submit(globex).status == Status.QUEUED


def test_a_retired_team_takes_no_new_jobs_schedules_or_tokens(acme):
    team_retire(team=acme, who="admin root")
    refusal = f"The team Acme was retired on {fresh(acme).retired_at:%Y-%m-%d %H:%M} UTC by admin root: " \
              "it takes no new jobs, schedules or tokens."
    for make in (lambda: submit(acme), lambda: nightly(acme),
                 lambda: token_create(team=acme, name="x", access="read", expires_at=None, by=None)):
        with pytest.raises(Exception) as refused:
            make()
        assert (refused.value.code, refused.value.status, refused.value.fields) == (  # type: ignore[attr-defined]
            "team_retired", 409, {"team": [refusal]})
    assert not Job.objects.filter(team=acme).exists() and not Schedule.objects.filter(team=acme).exists()
    assert not ApiToken.objects.filter(team=acme).exists()


def test_a_retired_teams_run_now_and_retry_are_refused(acme, acme_busy, bob_client):
    team_retire(team=acme, who="admin root")
    schedule, cancelled = acme_busy["off"], acme_busy["queued"]
    for url in (f"/api/v1/schedules/{schedule.public_id}/trigger/", f"/api/v1/jobs/{cancelled.public_id}/retry/"):
        response = bob_client.post(url, content_type="application/json")
        assert (response.status_code, response.json()["error"]["code"]) == (409, "team_retired"), url
    assert not Execution.objects.filter(schedule=schedule).exists()
    assert fresh(cancelled).status == Status.CANCELLED
    assert Job.objects.filter(team=acme).count() == 4


def test_the_api_refuses_a_retired_teams_submit_with_409_naming_the_team(acme, bob_client):
    api = token_client(acme)
    team_retire(team=acme, who="admin root")
    assert api.post("/api/v1/jobs/", {"handler": "pulse.noop", "payload": {}}, format="json").status_code == 401
    response = bob_client.post("/api/v1/jobs/", {"handler": "pulse.noop", "payload": {}},
                               content_type="application/json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "team_retired" and error["fields"]["team"] == [error["message"]]
    assert "was retired on" in error["message"]
    assert not Job.objects.filter(team=acme).exists()


def test_the_team_endpoint_says_when_and_by_whom_the_team_was_retired(acme, bob_client):
    team_retire(team=acme, who="admin root")
    body = bob_client.get("/api/v1/team/").json()
    assert (body["retired_at"], body["retired_by"]) == (fresh(acme).retired_at.isoformat(), "admin root")
    team_reactivate(team=acme, who="operator")
    body = bob_client.get("/api/v1/team/").json()
    assert (body["retired_at"], body["retired_by"]) == (None, None)


def test_the_dashboard_refuses_a_retired_teams_submit_on_its_form(acme, bob_client):
    team_retire(team=acme, who="admin root")
    response = bob_client.post("/jobs/new/", {"handler": "pulse.noop", "payload": "{}", "priority": "0"})
    assert response.status_code == 400
    assert response.context["form"].non_field_errors() == [fresh(acme).retired_message()]
    assert not Job.objects.filter(team=acme).exists()


def test_members_read_a_retired_teams_history_under_a_banner_saying_so(acme, acme_busy, bob_client):
    team_retire(team=acme, who="admin root")
    for url in ("/", "/jobs/", f"/jobs/{acme_busy['queued'].public_id}/", f"/schedules/{acme_busy['on'].public_id}/"):
        response = bob_client.get(url)
        assert response.status_code == 200, url
        assert 'id="team-retired"' in response.content.decode(), url
    page = bob_client.get(f"/schedules/{acme_busy['on'].public_id}/").content.decode()
    assert '<span id="schedule-paused-reason">(team retired)</span>' in page


@pytest.mark.parametrize(("url", "button"), [
    ("/jobs/", '>New job</a>'),
    ("/schedules/", '>New schedule</a>'),
    ("/handlers/pulse.noop/", 'id="handler-new-job"'),
    ("/handlers/pulse.noop/", 'id="handler-new-schedule"'),
])
def test_a_retired_teams_pages_offer_no_new_job_or_schedule(acme, bob_client, url, button):
    """Their forms would only refuse: the banner says why there is nothing new to start."""
    assert button in bob_client.get(url).content.decode()
    team_retire(team=acme, who="admin root")
    assert button not in bob_client.get(url).content.decode()


def test_a_retired_teams_pages_offer_no_button_that_would_only_be_refused(acme, acme_busy, bob_client):
    """Retry, Start now, Resume, Run again, Run now and switching a schedule on start work, which a
    retired team refuses; Delete and Edit (which cannot switch it on) stay."""
    failed = submit(acme)
    Job.objects.filter(pk=failed.pk).update(status=Status.FAILED, completed_at=timezone.now())
    on = acme_busy["on"]
    pages = {
        f"/jobs/{failed.public_id}/": ['id="action-retry"', 'id="action-run-again"'],
        f"/jobs/{acme_busy['held'].public_id}/": ['id="action-resume"'],
        f"/jobs/{acme_busy['queued'].public_id}/": ['id="action-pause"'],
        "/jobs/": ['name="action" value="retry"'],
        "/schedules/": [f'action="/schedules/{on.public_id}/trigger/"', f'action="/schedules/{on.public_id}/pause/"'],
        f"/schedules/{on.public_id}/": ['id="run-now"', 'id="toggle"'],
    }
    for url, buttons in pages.items():
        page = bob_client.get(url).content.decode()
        assert [button for button in buttons if button not in page] == [], url
    team_retire(team=acme, who="admin root")
    starts = ['id="action-retry"', 'id="action-run-again"', 'id="action-resume"', 'id="action-start"',
              'id="action-pause"']  # its held and queued jobs are cancelled now: Retry would be offered
    for url, buttons in pages.items():
        page = bob_client.get(url).content.decode()
        assert not any(button in page for button in buttons + (starts if url.startswith("/jobs/") else [])), url
    # Off, the schedule's state still shows (as a badge), and what stays possible is still offered.
    listed = bob_client.get("/schedules/").content.decode()
    assert 'class="badge badge-off">Off<' in listed
    detail = bob_client.get(f"/schedules/{on.public_id}/").content.decode()
    assert f'action="/schedules/{on.public_id}/delete/"' in detail and f'href="/schedules/{on.public_id}/edit/"' in detail
    assert 'value="delete"' in bob_client.get("/jobs/").content.decode()


def test_a_retired_teams_empty_jobs_list_offers_no_submit(acme, bob_client):
    assert 'href="/jobs/new/">Submit one</a>' in bob_client.get("/jobs/").content.decode()
    team_retire(team=acme, who="admin root")
    page = bob_client.get("/jobs/").content.decode()
    assert 'href="/jobs/new/">Submit one</a>' not in page
    assert "No jobs: the team was retired before it ran any." in page


def test_a_live_teams_pages_have_no_retirement_banner(acme, bob_client):
    assert 'id="team-retired"' not in bob_client.get("/").content.decode()


def test_a_retired_teams_schedule_is_not_resumed_and_after_reactivation_a_person_resumes_it(acme, acme_busy,
                                                                                            bob_client):
    schedule = acme_busy["on"]
    team_retire(team=acme, who="admin root")
    refused = bob_client.post(f"/api/v1/schedules/{schedule.public_id}/resume/", content_type="application/json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "team_retired"
    assert not fresh(schedule).enabled
    assert team_reactivate(team=acme, who="operator")
    assert (fresh(schedule).enabled, fresh(schedule).paused_reason) == (False, "team retired")
    assert bob_client.post(f"/api/v1/schedules/{schedule.public_id}/resume/",
                           content_type="application/json").status_code == 200
    assert (fresh(schedule).enabled, fresh(schedule).paused_reason) == (True, "")


def test_reactivating_takes_work_again_and_leaves_tokens_revoked(acme, acme_busy):
    team_retire(team=acme, who="admin root")
    assert team_reactivate(team=acme, who="operator")
    assert not team_reactivate(team=acme, who="operator")  # not retired any more: nothing to do
    assert not fresh(acme).is_retired
    assert fresh(acme_busy["token"]).revoked_at is not None
    assert fresh(acme_busy["queued"]).status == Status.CANCELLED
    assert submit(acme).status == Status.QUEUED
    assert Event.objects.filter(team=acme, kind="team.reactivated").count() == 1


def enable_behind_the_services_back(schedule: Schedule, due) -> None:
    # As a process of the release before retirement existed could leave it.
    Schedule.objects.filter(pk=schedule.pk).update(enabled=True, next_run_at=due)


def test_the_ticker_never_fires_a_retired_teams_schedule(acme, globex):
    ours, theirs = nightly(acme, cron="* * * * *"), nightly(globex, cron="* * * * *")
    team_retire(team=acme, who="operator")
    now = timezone.now()
    for schedule in (ours, theirs):
        enable_behind_the_services_back(schedule, now.replace(second=0, microsecond=0))
    result = schedules_tick(now=now)
    assert result.fired == 1
    assert list(Execution.objects.values_list("schedule_id", flat=True)) == [theirs.pk]
    assert fresh(ours).broken_reason == ""


def hold_for_a_slot_behind_the_services_back(job: Job) -> None:
    Job.objects.filter(pk=job.pk).update(status=Status.PAUSED, resume_at=timezone.now() - timedelta(seconds=1),
                                         hold_reasons=[{"kind": "concurrency", "resume_at": None, "message": "full"}])


def test_the_budget_release_pass_leaves_a_retired_teams_held_jobs(acme, globex):
    ours, theirs = submit(acme), submit(globex)
    team_retire(team=acme, who="operator")
    Job.objects.filter(pk=ours.pk).update(cancel_requested=False, cancelled_by="")
    for job in (ours, theirs):
        hold_for_a_slot_behind_the_services_back(job)
    assert job_release_due() == 1
    assert (fresh(ours).status, fresh(theirs).status) == (Status.PAUSED, Status.QUEUED)


def test_the_command_retires_says_what_it_did_and_reactivates(acme, acme_busy, capsys):
    call_command("pulse_retire_team", "acme")
    assert capsys.readouterr().out == ("Retired Acme (acme): 2 queued or held jobs cancelled, 1 running job told to "
                                       "stop, 1 schedule paused, 1 API token revoked.\n")
    assert fresh(acme).retired_by == "operator"
    call_command("pulse_retire_team", "acme")
    assert capsys.readouterr().out == ("Acme (acme) was retired already (by operator); swept again: 0 queued or held "
                                       "jobs cancelled, 0 running jobs told to stop, 0 schedules paused, 0 API "
                                       "tokens revoked.\n")
    call_command("pulse_retire_team", "acme", "--reactivate")
    assert capsys.readouterr().out == ("Reactivated Acme (acme): it takes new work again. Its tokens stay revoked "
                                       "and its schedules paused until a person resumes each.\n")
    call_command("pulse_retire_team", "acme", "--reactivate")
    assert capsys.readouterr().out == "Acme (acme) is not retired: nothing done.\n"


def test_the_command_refuses_an_unknown_slug(acme):
    with pytest.raises(CommandError, match="No team has the slug 'acmee'"):
        call_command("pulse_retire_team", "acmee")
    assert not fresh(acme).is_retired


# --- The admin -------------------------------------------------------------------------------------


def select(*teams: Team, **extra) -> dict:
    return {"action": "retire", "_selected_action": [str(team.pk) for team in teams], **extra}


def test_the_retire_action_asks_first_saying_what_will_happen(admin_client, acme, acme_busy, globex):
    response = admin_client.post("/admin/teams/team/", select(acme))
    assert response.status_code == 200
    plan = response.content.decode()
    assert ("2 queued or held jobs will be cancelled,\n    1 running job told to stop,\n    1 schedule paused "
            "(reason: team retired),\n    1 API token revoked.") in plan
    assert not fresh(acme).is_retired and fresh(acme_busy["queued"]).status == Status.QUEUED


def test_confirming_retires_through_the_service_naming_the_operator(admin_client, acme, acme_busy, globex):
    response = admin_client.post("/admin/teams/team/", select(acme, confirm="yes"), follow=True)
    assert response.status_code == 200
    said = [str(message) for message in response.context["messages"]]
    assert said == ["Retired: 1 team.", "Acme: 2 queued or held jobs cancelled, 1 running job told to stop, "
                                        "1 schedule paused, 1 API token revoked."]
    assert fresh(acme).retired_by == "admin admin"
    assert fresh(acme_busy["queued"]).cancelled_by == "admin admin: team retired"
    assert not fresh(globex).is_retired
    # Its history stays readable to staff.
    jobs = admin_client.get(f"/admin/jobs/job/?q={acme.slug}")
    assert jobs.status_code == 200 and acme_busy["queued"].public_id in jobs.content.decode()


def test_the_reactivate_action_reactivates_and_says_what_stays(admin_client, acme, globex):
    team_retire(team=acme, who="operator")
    response = admin_client.post("/admin/teams/team/", {"action": "reactivate",
                                                         "_selected_action": [str(acme.pk), str(globex.pk)]},
                                 follow=True)
    assert [str(message) for message in response.context["messages"]] == [
        "Reactivated: 1 team.", "Globex: it is not retired.",
        "Their tokens stay revoked and their schedules paused until a person resumes each; their cancelled jobs "
        "can be retried."]
    assert not fresh(acme).is_retired


def test_a_staff_member_who_may_only_view_teams_gets_no_retire_action(acme):
    viewer = staff_client("viewer", "view_team")
    page = viewer.get("/admin/teams/team/")
    assert page.status_code == 200 and 'value="retire"' not in page.content.decode()
    viewer.post("/admin/teams/team/", select(acme, confirm="yes"))
    assert not fresh(acme).is_retired


def test_people_who_are_not_staff_never_reach_the_action(acme, alice_client):
    response = alice_client.post("/admin/teams/team/", select(acme, confirm="yes"))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not fresh(acme).is_retired


def test_pulses_own_notifications_of_a_retired_team_still_go(acme):
    from pulse_site.notifications.services import notification_send, target_create

    target = target_create(team=acme, name="ops", kind="email", address="ops@example.com", by=None)
    team_retire(team=acme, who="operator")
    delivery = notification_send(target=target, subject="Acme retired", text="", event={})
    assert (delivery.handler, delivery.status) == ("pulse.notify", Status.QUEUED)


def test_a_running_jobs_queued_child_is_cancelled_with_it_and_counted_once(acme):
    parent = submit(acme, "pulse.sleep")
    assert claim(parent.public_id) is not None
    child = job_submit(team=acme, handler="pulse.noop", payload={}, source=Job.Source.CHILD, parent=parent).job
    done = team_retire(team=acme, who="operator")
    assert (done.jobs_cancelled, done.running_told_to_stop) == (1, 1)
    assert (fresh(child).status, fresh(child).cancelled_by) == (Status.CANCELLED, "operator: team retired")
    assert fresh(parent).cancel_requested


def test_a_retired_team_is_refused_a_new_token_alike_on_its_page_its_api_and_the_service(acme, alice_client):
    """One refusal, team_work_refusal: the page says its words instead of a form, the API
    answers it (409 team_retired) and the service raises it; no token is made."""
    assert 'id="token-create"' in alice_client.get("/team/").content.decode()
    team_retire(team=acme, who="admin root")
    refusal = fresh(acme).retired_message()
    assert (found := team_work_refusal(acme)) is not None and found.message == refusal

    page = alice_client.get("/team/").content.decode()
    assert 'id="token-create"' not in page and "Create one below" not in page
    assert f'<p class="quiet" id="token-create-refused">{escape(refusal)}</p>' in page

    response = alice_client.post("/api/v1/tokens/", {"name": "ci", "access": "read"}, content_type="application/json")
    assert (response.status_code, response.json()["error"]) == (
        409, {"code": "team_retired", "message": refusal, "fields": {"team": [refusal]}})

    with pytest.raises(Conflict) as refused:
        token_create(team=acme, name="ci", access="read", expires_at=None, by=None)
    assert (refused.value.code, refused.value.message) == ("team_retired", refusal)
    assert not ApiToken.objects.filter(team=acme, revoked_at__isnull=True).exists()
