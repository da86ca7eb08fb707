"""The jobs pages, driven through Django's test client: list, detail, submit form, bulk and actions."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs.models import Job, TaskLog

Status = Job.Status


def snapshot(*jobs: Job) -> list[tuple[str, str, bool]]:
    return [(j.public_id, *Job.objects.values_list("status", "cancel_requested").get(pk=j.pk)) for j in jobs]


# --- list ---------------------------------------------------------------------------------------


def test_the_list_shows_the_teams_jobs_newest_first_and_not_other_teams(alice_client, submit, globex):
    older, newer = submit(), submit("pulse.sleep", {"steps": 2})
    theirs = submit(team=globex)
    body = alice_client.get("/jobs/").content.decode()
    assert body.index(newer.public_id) < body.index(older.public_id)
    assert theirs.public_id not in body
    assert 'data-job-id="%s"' % newer.public_id in body


def test_the_list_filters_by_status_handler_and_source(alice_client, submit):
    sleeper = submit("pulse.sleep", {"steps": 1})
    noop = submit("pulse.noop", source=Job.Source.DASHBOARD)
    Job.objects.filter(pk=noop.pk).update(status=Status.COMPLETED)
    assert [r.job.public_id for r in alice_client.get("/jobs/?handler=pulse.sleep").context["rows"]] == [sleeper.public_id]
    assert [r.job.public_id for r in alice_client.get("/jobs/?status=completed").context["rows"]] == [noop.public_id]
    assert [r.job.public_id for r in alice_client.get("/jobs/?source=dashboard").context["rows"]] == [noop.public_id]


def test_a_time_range_the_wrong_way_round_is_refused_under_to_not_shown_as_no_jobs(alice_client, submit):
    """The API refuses it ("Later than created_after."); the list said "No jobs match this
    filter", as if the team had none then, and the export gave an empty file."""
    submit()
    query = {"created_after": "2026-12-08T10:00", "created_before": "2026-12-01T10:00"}
    response = alice_client.get("/jobs/", query)
    assert response.context["rows"] == []
    assert response.context["form"].errors == {"created_before": ["Later than From."]}
    assert [str(m) for m in response.context["messages"]] == ["To (UTC): Later than From."]
    assert "The filter could not be read (see above), so no jobs are shown." in response.content.decode()
    export = alice_client.get("/jobs/export.csv", query)
    assert (export.status_code, export.content.decode()) == (400, "To (UTC): Later than From.")


def test_load_more_continues_from_the_cursor(alice_client, submit, monkeypatch):
    monkeypatch.setattr("jobs.views.PAGE_SIZE", 2)
    jobs = [submit() for _ in range(3)]
    first = alice_client.get("/jobs/")
    assert [r.job.public_id for r in first.context["rows"]] == [jobs[2].public_id, jobs[1].public_id]
    assert first.context["next_url"].startswith("?cursor=")
    second = alice_client.get(f"/jobs/{first.context['next_url']}")
    assert [r.job.public_id for r in second.context["rows"]] == [jobs[0].public_id]
    assert second.context["next_url"] == ""


def test_load_more_goes_on_when_the_job_it_would_start_with_was_deleted(alice_client, submit, monkeypatch):
    """The cursor named the next page's first job; deleted meanwhile (by a teammate, a bulk delete,
    the retention), Load more answered no rows and no button: the rest of the list was out of reach."""
    monkeypatch.setattr("jobs.views.PAGE_SIZE", 2)
    jobs = [submit() for _ in range(5)]
    Job.objects.filter(pk__in=[j.pk for j in jobs]).update(status=Status.COMPLETED)
    first = alice_client.get("/jobs/")
    Job.objects.filter(pk=jobs[2].pk).delete()
    second = alice_client.get(f"/jobs/{first.context['next_url']}")
    assert [str(m) for m in second.context["messages"]] == []
    assert [r.job.public_id for r in second.context["rows"]] == [jobs[1].public_id, jobs[0].public_id]


def test_searching_an_id_goes_straight_to_the_job(alice_client, submit, globex):
    job = submit()
    response = alice_client.get(f"/jobs/?q={job.public_id}")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.public_id}/"
    theirs = submit(team=globex)
    response = alice_client.get(f"/jobs/?q={theirs.public_id}")
    assert response.status_code == 200
    assert "No job" in response.content.decode()


def test_a_held_job_shows_its_hold_reason(alice_client, submit):
    job = submit()
    alice_client.post(f"/jobs/{job.public_id}/pause/")
    assert "Held by alice" in alice_client.get("/jobs/").content.decode()
    # Under the "Held" badge of its page, the reason is said once.
    assert '<p class="hold-reason">Held by alice.</p>' in alice_client.get(f"/jobs/{job.public_id}/").content.decode()


def test_only_a_job_a_person_held_offers_resume(acme, alice_client, submit):
    """A job held by a limit (or a paused queue) goes back to its hold on a Resume: the limit still
    binds, and the ticker releases it by itself when it no longer does. Its page says when, and
    offers no button that would change nothing."""
    by_person, by_limit = submit(), submit()
    alice_client.post(f"/jobs/{by_person.public_id}/pause/")
    Job.objects.filter(pk=by_limit.pk).update(status=Job.Status.PAUSED, hold_reasons=[
        {"kind": "budget", "message": "Daily limit of 1 reached"}])
    assert 'id="action-resume"' in alice_client.get(f"/jobs/{by_person.public_id}/").content.decode()
    page = alice_client.get(f"/jobs/{by_limit.public_id}/").content.decode()
    assert "Daily limit of 1 reached" in page and 'id="action-cancel"' in page
    assert 'id="action-resume"' not in page
    # A page left open since the job was a person's hold posts it anyway: refused, saying why.
    refused = alice_client.post(f"/jobs/{by_limit.public_id}/resume/", follow=True).content.decode()
    assert "released by itself" in refused
    assert Job.objects.get(pk=by_limit.pk).hold_reasons[0]["message"] == "Daily limit of 1 reached"


def test_a_queued_job_due_later_says_why_and_when_on_the_list_and_its_page(alice_client, submit):
    """A retry in its backoff, a schedule's run written before its time and a start asked for
    later are queued but not stuck: the row and the job's page say when they start."""
    from datetime import timedelta

    from django.utils import timezone

    later = timezone.now() + timedelta(minutes=5)
    retrying = submit("pulse.noop", run_after=later)
    Job.objects.filter(pk=retrying.pk).update(attempts=1)  # as a failed first attempt leaves it
    staged = submit("pulse.noop", run_after=later, origin="SP_01M903RGN69NGMEA2Q8RRNVS1S", source=Job.Source.SCHEDULE)
    asked = submit("pulse.noop", run_after=later)
    now = submit("pulse.noop")
    Job.objects.filter(pk=now.pk).update(run_after=timezone.now() - timedelta(seconds=1))
    for job, words in ((retrying, "Retries"), (staged, "Scheduled run, starts"), (asked, "Starts")):
        for url in (f"/jobs/{job.public_id}/row/", f"/jobs/{job.public_id}/"):
            body = alice_client.get(url).content.decode()
            assert f"{words} <time" in body and f'datetime="{later.isoformat()}"' in body, url
    assert 'data-field="starts"' not in alice_client.get(f"/jobs/{now.public_id}/row/").content.decode()
    assert 'id="job-starts"' not in alice_client.get(f"/jobs/{now.public_id}/").content.decode()


def test_a_job_waiting_for_a_later_start_can_be_started_now_from_its_page(alice_client, submit):
    from datetime import timedelta

    from django.utils import timezone

    later = timezone.now() + timedelta(hours=1)
    waiting = submit("pulse.noop", run_after=later)
    staged = submit("pulse.noop", run_after=later, origin="SP_01M903RGN69NGMEA2Q8RRNVS1S", source=Job.Source.SCHEDULE)
    assert 'id="action-start">Start now</button>' in alice_client.get(f"/jobs/{waiting.public_id}/").content.decode()
    assert 'id="action-start"' not in alice_client.get(f"/jobs/{staged.public_id}/").content.decode()
    page = alice_client.post(f"/jobs/{waiting.public_id}/start/", follow=True).content.decode()
    assert Job.objects.get(pk=waiting.pk).run_after is None
    assert 'id="action-start"' not in page and 'id="job-starts"' not in page


def test_several_hold_reasons_read_as_sentences():
    from jobs.views import JobRow

    row = JobRow(Job(hold_reasons=[{"kind": "concurrency", "message": "1 job is running; the limit is 1 at a time."},
                                   {"kind": "manual", "message": "Held by alice"}, {"kind": "x"}]))
    assert row.hold_reason == "1 job is running; the limit is 1 at a time. Held by alice."


@pytest.mark.parametrize(("status", "total", "current", "bar"), [
    (Status.QUEUED, None, 0, 'max="1" value="0"'),  # waiting: an empty bar, not a moving one
    (Status.PAUSED, None, 0, 'max="1" value="0"'),
    (Status.FAILED, None, 0, 'max="1" value="0"'),
    (Status.RUNNING, None, 0, 'max="1" aria-label'),  # running with no total said: no value, the bar moves
    (Status.RUNNING, 7, 3, 'max="7" value="3"'),
    (Status.COMPLETED, None, 0, 'max="1" value="1"'),
])
def test_the_progress_bar_moves_only_while_a_job_runs_without_a_total(alice_client, submit, status, total,
                                                                     current, bar):
    job = submit()
    Job.objects.filter(pk=job.pk).update(status=status, progress_total=total, progress_current=current)
    for url, attribute in ((f"/jobs/{job.public_id}/row/", 'data-field="progress"'),
                           (f"/jobs/{job.public_id}/", 'id="job-progress"')):
        assert f"<progress {attribute} {bar}" in alice_client.get(url).content.decode(), url


def test_the_row_partial_renders_one_job(alice_client, submit):
    job = submit()
    body = alice_client.get(f"/jobs/{job.public_id}/row/").content.decode()
    assert body.startswith(f'<tr data-job-id="{job.public_id}"')


# --- detail and actions -------------------------------------------------------------------------


def test_the_detail_page_shows_payload_attempts_logs_and_children(alice_client, submit):
    parent = submit("pulse.sleep", {"steps": 3, "seconds": 0})
    child = submit(parent=parent)
    TaskLog.objects.create(job=parent, stage="sleep", task="step-1", message="Step 1 of 3 done")
    body = alice_client.get(f"/jobs/{parent.public_id}/").content.decode()
    assert '&quot;steps&quot;: 3' in body
    assert "Step 1 of 3 done" in body and 'data-stage="sleep"' in body and 'data-task="step-1"' in body
    assert child.public_id in body
    assert 'id="action-cancel"' in body and 'id="action-pause"' in body and 'id="action-retry"' not in body
    assert parent.public_id in alice_client.get(f"/jobs/{child.public_id}/").content.decode()


def test_the_detail_page_says_lines_are_left_out_only_when_there_are_more_than_it_shows(alice_client, submit):
    """It shows the first 1,000 lines: a job of exactly 1,000 has them all, one of 1,001 does not."""
    job = submit()
    TaskLog.objects.bulk_create([TaskLog(job=job, stage="s", message=f"line {n}") for n in range(1_000)])
    body = alice_client.get(f"/jobs/{job.public_id}/").content.decode()
    assert "line 999" in body and "Only the first lines are shown" not in body and "data-truncated" not in body

    TaskLog.objects.create(job=job, stage="s", message="line 1000")
    body = alice_client.get(f"/jobs/{job.public_id}/").content.decode()
    assert "line 1000" not in body and "Only the first lines are shown" in body and 'data-truncated="yes"' in body


@pytest.mark.parametrize("grace, words", [(30.0, "cancelling… (stopped 30 s after the cancel if the handler has not "
                                                  "returned)"), (0.0, "cancelling…</span>")])
def test_a_running_job_being_cancelled_says_when_it_will_be_stopped(alice_client, submit, settings, grace, words):
    settings.PULSE_CANCEL_GRACE_SECONDS = grace
    job = submit()
    Job.objects.filter(pk=job.pk).update(status=Status.RUNNING, cancel_requested=True, started_at=timezone.now())
    assert words in alice_client.get(f"/jobs/{job.public_id}/").content.decode()


@pytest.mark.parametrize("attempts, words", [(1, "after running 7.9 s"), (3, "3 attempts over 7.9 s")])
def test_the_finish_says_over_how_many_attempts_the_time_was_spent(alice_client, submit, attempts, words):
    """A job that failed its first tries ran for the last one only: the span from its first start
    is not 'running' time when it holds retries' waits."""
    job = submit()
    started = timezone.now() - timedelta(seconds=10)
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED, attempts=attempts, max_attempts=3, started_at=started,
                                         completed_at=started + timedelta(milliseconds=7_900))
    body = alice_client.get(f"/jobs/{job.public_id}/").content.decode()
    assert words in body
    assert ("after running" in body) == (attempts == 1)


@pytest.mark.parametrize("action, before, after", [
    ("cancel", Status.QUEUED, Status.CANCELLED),
    ("pause", Status.QUEUED, Status.PAUSED),
    ("resume", Status.PAUSED, Status.QUEUED),
    ("retry", Status.FAILED, Status.QUEUED),
])
def test_each_action_calls_its_service(alice_client, submit, action, before, after):
    job = submit()
    Job.objects.filter(pk=job.pk).update(status=before)
    response = alice_client.post(f"/jobs/{job.public_id}/{action}/")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.public_id}/"
    assert Job.objects.get(pk=job.pk).status == after


def test_a_refused_action_becomes_a_message_and_changes_nothing(alice_client, submit):
    job = submit()
    Job.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    response = alice_client.post(f"/jobs/{job.public_id}/cancel/", follow=True)
    assert "already completed" in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED


def test_a_cancelled_job_says_who_cancelled_it_on_its_page_and_its_row_until_retried(alice_client, submit):
    """Who cancelled it was only in its events, which are kept a week to the job's month."""
    job = submit()
    alice_client.post(f"/jobs/{job.public_id}/cancel/")

    page = alice_client.get(f"/jobs/{job.public_id}/").content.decode()
    row = alice_client.get("/jobs/").content.decode()
    assert '<span class="quiet" id="job-cancelled-by">by alice</span>' in page
    assert '<div class="quiet" data-field="cancelled-by">by alice</div>' in row

    alice_client.post(f"/jobs/{job.public_id}/retry/")
    assert Job.objects.get(pk=job.pk).cancelled_by == ""
    assert "job-cancelled-by" not in alice_client.get(f"/jobs/{job.public_id}/").content.decode()


def test_an_unknown_action_is_404(alice_client, submit):
    assert alice_client.post(f"/jobs/{submit().public_id}/explode/").status_code == 404


# --- bulk ---------------------------------------------------------------------------------------


def test_bulk_cancel_reports_cancelled_and_refused(alice_client, submit):
    a, b, done = submit(), submit(), submit()
    Job.objects.filter(pk=done.pk).update(status=Status.COMPLETED)
    response = alice_client.post("/jobs/bulk/", {"action": "cancel", "ids": [a.public_id, b.public_id, done.public_id]},
                                 follow=True)
    assert ("2 cancelled, 1 refused: The job is already completed; only queued, held or running jobs can be "
            "cancelled (1).") in response.content.decode()
    assert [s for _, s, _ in snapshot(a, b, done)] == [Status.CANCELLED, Status.CANCELLED, Status.COMPLETED]


def test_bulk_retry_requeues_failed_jobs(alice_client, submit):
    job = submit()
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED)
    response = alice_client.post("/jobs/bulk/", {"action": "retry", "ids": [job.public_id]}, follow=True)
    assert "1 retried, 0 refused." in response.content.decode()
    assert Job.objects.get(pk=job.pk).status == Status.QUEUED


# --- submit form --------------------------------------------------------------------------------


def test_the_form_lists_handlers_and_renders_fields_from_the_schema(alice_client):
    body = alice_client.get("/jobs/new/").content.decode()
    assert 'value="pulse.sleep"' in body and "Sleep in steps" in body
    body = alice_client.get("/jobs/new/?handler=pulse.sleep").content.decode()
    assert 'name="payload.steps"' in body and 'value="5"' in body and 'name="priority"' in body
    body = alice_client.get("/jobs/new/?handler=pulse.fail").content.decode()
    assert '<select name="payload.code"' in body and 'name="payload.retryable"' in body


def test_submitting_the_form_creates_a_job_and_lands_on_it(alice_client, acme):
    response = alice_client.post("/jobs/new/", {"handler": "pulse.sleep", "payload.steps": "4",
                                                "payload.seconds": "0.3", "priority": "5"})
    job = Job.objects.get(team=acme)
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.public_id}/"
    assert (job.handler, job.payload, job.priority, job.source, job.created_by) == (
        "pulse.sleep", {"steps": 4, "seconds": 0.3}, 5, Job.Source.DASHBOARD, "alice")


def test_a_start_time_in_the_form_is_read_in_the_teams_zone_and_the_job_waits_for_it(alice_client, acme,
                                                                                    time_machine):
    from datetime import UTC, datetime

    from pulse_site.teams.services import team_update

    time_machine.move_to(datetime(2026, 6, 1, 10, 0, tzinfo=UTC), tick=False)
    team_update(team=acme, changes={"time_zone": "Europe/Berlin"}, by=None)
    assert "Start at (Europe/Berlin)" in alice_client.get("/jobs/new/?handler=pulse.noop").content.decode()
    response = alice_client.post("/jobs/new/", {"handler": "pulse.noop", "payload": "{}", "priority": "0",
                                                "start_at": "2026-06-01T14:15"}, follow=True)
    job = Job.objects.get(team=acme)
    assert job.run_after == datetime(2026, 6, 1, 12, 15, tzinfo=UTC)  # 14:15 CEST
    assert "Starts <time" in response.content.decode()

    too_far = alice_client.post("/jobs/new/", {"handler": "pulse.noop", "payload": "{}", "priority": "0",
                                               "start_at": "2028-01-01T00:00"})
    assert too_far.status_code == 400
    assert too_far.context["form"].errors == {"start_at": ["At most 365 days ahead; use a schedule for later runs."]}
    assert Job.objects.filter(team=acme).count() == 1


def test_a_schema_error_shows_next_to_its_field_keeps_the_input_and_creates_nothing(alice_client):
    response = alice_client.post("/jobs/new/", {"handler": "pulse.sleep", "payload.steps": "0",
                                                "payload.seconds": "0.5", "priority": "0"})
    assert response.status_code == 400
    assert response.context["form"].errors == {"payload.steps": ["0 is less than the minimum of 1"]}
    assert 'value="0.5"' in response.content.decode()
    assert not Job.objects.exists()


def test_a_pattern_refused_is_quoted_as_the_handler_page_writes_it_not_with_its_backslashes_doubled(alice_client):
    """jsonschema writes the pattern as Python's repr, each backslash doubled; the hint under the
    input and the handler's page write it as it is, and so does the refusal now."""
    response = alice_client.post("/jobs/new/", {"handler": "http.request", "payload.url": "https://example.com/",
                                                "payload.method": "GET", "payload.timeout": "10",
                                                "payload.cost": "1e9", "priority": "0"})
    assert response.status_code == 400
    assert response.context["form"].errors == {"payload.cost": ["'1e9' does not match '^\\d+(\\.\\d{1,6})?$'"]}
    assert not Job.objects.exists()


def test_a_whole_number_typed_in_a_number_field_is_kept_and_said_back_as_typed(alice_client, acme):
    """A schema's "number" takes 20 as it is: typed 20, the payload held 20.0 and a refusal of 0
    said "0.0 is less than or equal to the minimum of 0"."""
    refused = alice_client.post("/jobs/new/", {"handler": "http.request", "payload.url": "https://example.com/",
                                               "payload.method": "GET", "payload.timeout": "0", "priority": "0"})
    assert refused.context["form"].errors == {"payload.timeout": ["0 is less than or equal to the minimum of 0"]}
    alice_client.post("/jobs/new/", {"handler": "pulse.sleep", "payload.steps": "2", "payload.seconds": "20",
                                     "priority": "0"})
    alice_client.post("/jobs/new/", {"handler": "pulse.sleep", "payload.steps": "2", "payload.seconds": "0.5",
                                     "priority": "0"})
    payloads = [json.dumps(p) for p in Job.objects.filter(team=acme).order_by("id").values_list("payload", flat=True)]
    assert payloads == ['{"steps": 2, "seconds": 20}', '{"steps": 2, "seconds": 0.5}']


def test_a_job_held_at_submit_says_each_reason_as_a_sentence_of_its_own(alice_client, acme, temp_handler):
    """The reasons, each a sentence ending in a full stop, were joined with "; ": ".; " between them."""
    from budgets.services import budget_policy_update

    from jobs.runner import run_job
    from jobs.services import job_submit

    temp_handler("test.dear", cost="1")(lambda ctx: None)
    budget_policy_update(team=acme, changes={"daily_limit": "1.5", "weekly_limit": "1.5"}, by=None)
    run_job(job_submit(team=acme, handler="test.dear", payload={}, source="api").job.public_id)  # 1 spent
    response = alice_client.post("/jobs/new/", {"handler": "test.dear", "payload": "{}", "priority": "0"}, follow=True)
    said = [str(m) for m in response.context["messages"]]
    assert said == ["Submitted, and held: 1 spent or reserved + 1 estimate is over the team's daily limit of 1.5. "
                    "1 spent or reserved + 1 estimate is over the team's weekly limit of 1.5."]


def test_input_that_is_not_a_number_is_refused_before_submit(alice_client):
    response = alice_client.post("/jobs/new/", {"handler": "pulse.sleep", "payload.steps": "many", "priority": "0"})
    assert response.status_code == 400
    assert "payload.steps" in response.context["form"].errors
    assert 'value="many"' in response.content.decode()
    assert not Job.objects.exists()


def test_a_handler_without_properties_takes_a_json_payload(alice_client, acme):
    response = alice_client.post("/jobs/new/", {"handler": "pulse.noop", "payload": "{nope", "priority": "0"})
    assert response.status_code == 400 and not Job.objects.exists()
    alice_client.post("/jobs/new/", {"handler": "pulse.noop", "payload": '{"a": 1}', "priority": "0"})
    assert Job.objects.get(team=acme).payload == {"a": 1}


# --- access -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/jobs/", "/jobs/new/", "/jobs/JB_00000000000000000000000000/"])
def test_anonymous_visitors_are_sent_to_the_login_page(db, path):
    response = Client().get(path)
    assert response.status_code == 302 and response["Location"] == f"/login/?next={path}"


def test_viewers_see_no_action_controls(vic_client, submit):
    job = submit()
    for path in ("/jobs/", f"/jobs/{job.public_id}/"):
        body = vic_client.get(path).content.decode()
        assert "bulk-form" not in body and 'id="action-cancel"' not in body and "New job" not in body


def test_viewers_get_403_on_every_post_and_nothing_changes(vic_client, submit, acme):
    job = submit()
    posts = [
        ("/jobs/new/", {"handler": "pulse.noop", "payload": "{}", "priority": "0"}),
        ("/jobs/bulk/", {"action": "cancel", "ids": [job.public_id]}),
        *[(f"/jobs/{job.public_id}/{a}/", {}) for a in ("cancel", "pause", "resume", "retry")],
    ]
    for path, data in posts:
        assert vic_client.post(path, data).status_code == 403, path
    assert vic_client.get("/jobs/new/").status_code == 403
    assert snapshot(job) == [(job.public_id, Status.QUEUED, False)]
    assert Job.objects.filter(team=acme).count() == 1


def test_another_teams_job_is_404_on_every_page_and_action(charlie_client, submit):
    job = submit()
    for path in (f"/jobs/{job.public_id}/", f"/jobs/{job.public_id}/row/", f"/jobs/{job.public_id}/status/"):
        assert charlie_client.get(path).status_code == 404, path
    for action in ("cancel", "pause", "resume", "retry"):
        assert charlie_client.post(f"/jobs/{job.public_id}/{action}/").status_code == 404
    response = charlie_client.post("/jobs/bulk/", {"action": "cancel", "ids": [job.public_id]}, follow=True)
    assert "0 cancelled, 1 refused: No such job in this team (1)." in response.content.decode()
    assert snapshot(job) == [(job.public_id, Status.QUEUED, False)]
    assert job.public_id not in charlie_client.get("/jobs/").content.decode()


def test_the_list_filters_by_creation_time(acme, alice_client, time_machine):
    from jobs.services import job_submit

    time_machine.move_to("2026-05-01 08:00Z", tick=False)
    old = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    time_machine.move_to("2026-05-03 08:00Z", tick=False)
    new = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    recent = alice_client.get("/jobs/?period=24h").content.decode()
    assert new.public_id in recent and old.public_id not in recent
    window = alice_client.get("/jobs/?created_after=2026-04-30T00:00&created_before=2026-05-02T00:00").content.decode()
    assert old.public_id in window and new.public_id not in window


def test_the_list_filters_by_schedule(acme, alice_client):
    from jobs.services import job_submit

    schedule_id = "SP_01M81H2V5QTVMSFSGE610M1H48"
    mine = job_submit(team=acme, handler="pulse.noop", payload={}, source="schedule", origin=schedule_id).job
    other = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    page = alice_client.get(f"/jobs/?schedule={schedule_id}").content.decode()
    assert mine.public_id in page and other.public_id not in page


def test_a_held_job_shows_when_it_resumes_and_its_pulse_state_reads_as_a_table(acme, alice_client):
    from datetime import timedelta

    from django.utils import timezone

    from jobs.services import job_submit

    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.PAUSED, resume_at=timezone.now() + timedelta(hours=2, minutes=1),
        hold_reasons=[{"kind": "budget", "message": "Daily limit of 1 reached"}],
        pulse_state={"at": "2026-05-01T10:00:00+00:00", "spent": {"day": "0.9"}, "limit": {"day": "1"},
                     "remaining": {"day": "0.1"}, "calls_this_minute": 3, "calls_remaining": 2, "running": 1,
                     "max_concurrent": 4})
    listing = alice_client.get("/jobs/").content.decode()
    assert "Daily limit of 1 reached" in listing and "resumes" in listing and "2\xa0hours" in listing
    detail = alice_client.get(f"/jobs/{job.public_id}/").content.decode()
    assert '<th scope="row">Day</th><td data-label="Spent or reserved">0.9</td>' in detail
    assert "2 remaining" in detail and "of 4 at most" in detail
    # The template's note to its readers is no text of the page (a {# #} comment ends at its line).
    assert "{#" not in detail and "#}" not in detail and "The budget snapshot taken" not in detail


def test_a_job_held_behind_another_shows_the_limit_that_binds_now_on_the_list_and_its_page(
        acme, alice_client, submit, django_capture_on_commit_callbacks):
    """Held first for the rate behind another job, then the rate is removed and a cap of one binds:
    its row and its page say the cap and its place, and no longer when the rate resumes it."""
    from budgets.services import budget_policy_update
    from jobs.runner import claim, run_job

    def set_policy(**changes):
        with django_capture_on_commit_callbacks(execute=True):
            budget_policy_update(team=acme, changes=changes, by=None)

    set_policy(calls_per_minute=1)
    assert claim(submit().public_id) is not None
    first, second = submit(), submit()
    run_job(first.public_id)
    run_job(second.public_id)
    assert Job.objects.get(pk=second.pk).hold_reasons[0]["kind"] == "rate"

    set_policy(calls_per_minute=None, max_concurrent=1)

    said = "1 job is running; the limit is 1 at a time, and 1 job held before this one waits for a slot."
    detail = alice_client.get(f"/jobs/{second.public_id}/").content.decode()
    assert f'<p class="hold-reason">{said}</p>' in detail
    row = next(r for r in alice_client.get("/jobs/").context["rows"] if r.job.pk == second.pk)
    assert row.hold_reason == said and row.job.resume_at is None


# --- run again ----------------------------------------------------------------------------------


def test_run_again_starts_the_form_from_the_jobs_payload_and_submits_a_new_job(alice_client, submit, acme):
    first = submit("pulse.sleep", {"steps": 4, "seconds": 0.3}, priority=7)
    page = alice_client.get(f"/jobs/{first.public_id}/").content.decode()
    assert f'href="/jobs/new/?from={first.public_id}"' in page

    response = alice_client.get(f"/jobs/new/?from={first.public_id}")
    assert response.status_code == 200
    form = response.context["form"]
    assert (form["payload.steps"].value(), form["payload.seconds"].value(), form["priority"].value()) == (4, 0.3, 7)
    body = response.content.decode()
    assert f"Starting from <a href=\"/jobs/{first.public_id}/\">" in body and 'value="4"' in body

    # What the browser sends back unchanged is a new job with the same payload and priority.
    data = {"handler": "pulse.sleep", **{name: form[name].value() for name in ("payload.steps", "payload.seconds", "priority")}}
    assert alice_client.post("/jobs/new/", data).status_code == 302
    again = Job.objects.filter(team=acme).exclude(pk=first.pk).get()
    assert (again.payload, again.priority) == (first.payload, first.priority)


def test_run_again_fills_every_kind_of_field(alice_client, submit):
    failed = submit("pulse.fail", {"code": "network_error", "message": "boom", "retryable": False})
    form = alice_client.get(f"/jobs/new/?from={failed.public_id}").context["form"]
    assert (form["payload.code"].value(), form["payload.message"].value(), form["payload.retryable"].value()) == (
        "network_error", "boom", False)
    call = submit("http.request", {"url": "https://example.com/x", "headers": {"X-Team": "acme"}})
    form = alice_client.get(f"/jobs/new/?from={call.public_id}").context["form"]
    assert form["payload.headers"].value() == '{"X-Team": "acme"}'
    free = submit("pulse.noop", {"a": [1, 2]})
    form = alice_client.get(f"/jobs/new/?from={free.public_id}").context["form"]
    assert json.loads(form["payload"].value()) == {"a": [1, 2]}


def test_run_again_says_which_payload_keys_the_form_cannot_carry(alice_client, submit):
    job = submit("pulse.sleep", {"steps": 2})
    Job.objects.filter(pk=job.pk).update(payload={"steps": 2, "retired_option": "x"}, handler_version="0")
    body = alice_client.get(f"/jobs/new/?from={job.public_id}").content.decode()
    assert "<code>retired_option</code>" in body and 'id="run-again-left-out"' in body
    assert "it ran on version 0, the handler is now version 1" in body


def test_run_again_of_another_teams_job_is_a_404_and_viewers_cannot_use_it(alice_client, vic_client, charlie_client,
                                                                           submit):
    job = submit("pulse.sleep", {"steps": 2})
    assert charlie_client.get(f"/jobs/new/?from={job.public_id}").status_code == 404
    assert alice_client.get("/jobs/new/?from=JB_nothing").status_code == 404
    assert vic_client.get(f"/jobs/new/?from={job.public_id}").status_code == 403
    assert "action-run-again" not in vic_client.get(f"/jobs/{job.public_id}/").content.decode()


# --- filtering by error code, and the live list's inserts -------------------------------------------


def test_the_list_filters_by_error_code_from_the_form_the_search_and_the_api(alice_client, acme_api, submit):
    from jobs.runner import run_job

    network = submit("pulse.fail", {"code": "network_error", "retryable": False})
    parse = submit("pulse.fail", {"code": "parse_error"})
    for job in (network, parse):
        run_job(job.public_id)
    submit("pulse.noop")
    for url in ("/jobs/?error_code=network_error", "/jobs/?q=failed+network_error"):
        assert [r.job.public_id for r in alice_client.get(url).context["rows"]] == [network.public_id]
    body = alice_client.get("/jobs/").content.decode()
    assert '<select name="error_code"' in body and '<option value="worker_lost">Worker lost</option>' in body
    answer = acme_api.get("/api/v1/jobs/?error_code=parse_error")
    assert [j["id"] for j in answer.json()["results"]] == [parse.public_id]
    refused = acme_api.get("/api/v1/jobs/?error_code=oops")
    assert refused.status_code == 400 and "error_code" in refused.json()["error"]["fields"]
    # Matching all of them (the bulk box) counts with the same filter.
    assert alice_client.get("/jobs/?error_code=network_error").context["matching"] == 1


def test_a_new_row_is_offered_to_a_filtered_list_only_when_it_matches(alice_client, submit):
    wanted = submit("pulse.noop", {"user": 42})
    other = submit("pulse.noop", {"user": 7})
    query = "q=pulse.noop+user%3D42&insert=1"
    assert alice_client.get(f"/jobs/{wanted.public_id}/row/?{query}").status_code == 200
    assert alice_client.get(f"/jobs/{other.public_id}/row/?{query}").status_code == 204
    assert alice_client.get(f"/jobs/{other.public_id}/row/?status=failed&insert=1").status_code == 204
    assert alice_client.get(f"/jobs/{other.public_id}/row/?error_code=timeout&insert=1").status_code == 204
    # Without insert=1 (a redraw of a row already shown) the filter is not asked.
    assert alice_client.get(f"/jobs/{other.public_id}/row/?status=failed").status_code == 200


def test_a_new_row_whose_job_is_gone_already_is_not_offered_and_not_an_error(alice_client, submit, globex):
    """A job deleted between its job.created event and the list's fetch filled the console with 404s."""
    from jobs.services import job_cancel, job_delete

    gone = submit("pulse.noop")
    job_delete(job=job_cancel(job=gone), by="alice")
    theirs = submit("pulse.noop", team=globex)
    for job in (gone, theirs):  # another team's job reads as one that is not there
        assert alice_client.get(f"/jobs/{job.public_id}/row/?insert=1").status_code == 204
        assert alice_client.get(f"/jobs/{job.public_id}/row/").status_code == 404


def test_a_failed_row_says_with_which_error(alice_client, submit):
    from jobs.runner import run_job

    job = submit("pulse.fail", {"code": "network_error", "message": "peer reset " + "x" * 200, "retryable": False})
    run_job(job.public_id)
    row = alice_client.get(f"/jobs/{job.public_id}/row/").content.decode()
    assert '<div class="row-error" data-field="error"><code>network_error</code> peer reset xxx' in row
    assert "x" * 100 not in row  # the message is cut short; the job's page has it whole
    done = submit("pulse.noop")
    run_job(done.public_id)
    assert 'data-field="error"' not in alice_client.get(f"/jobs/{done.public_id}/row/").content.decode()


# --- export -------------------------------------------------------------------------------------


def _csv(response) -> list[dict[str, str]]:
    import csv
    import io

    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_the_export_is_the_filtered_list_as_csv_of_the_teams_jobs_only(alice_client, vic_client, submit, globex):
    from jobs.runner import run_job

    failed = submit("pulse.fail", {"code": "network_error", "message": "=HYPERLINK(\"http://x\")", "retryable": False})
    run_job(failed.public_id)
    done = submit("demo.report", {"title": "+1 report", "delay": 0})
    submit("pulse.noop", team=globex)

    response = alice_client.get("/jobs/export.csv")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith(f'attachment; filename="{done.team.slug}-jobs-')
    rows = _csv(response)
    assert [r["id"] for r in rows] == [done.public_id, failed.public_id]  # newest first, not Globex's
    first = rows[1]
    assert (first["handler"], first["status"], first["error_code"], first["attempts"]) == (
        "pulse.fail", "failed", "network_error", "1")
    assert first["error_message"] == "'=HYPERLINK(\"http://x\")"  # never a formula in a spreadsheet
    assert rows[0]["payload"] == '{"delay":0,"title":"+1 report"}' and rows[0]["cost_estimate"] == "0.12"
    assert rows[0]["started_at"] == "" and rows[1]["run_ms"] != ""

    only_failed = _csv(vic_client.get("/jobs/export.csv?error_code=network_error"))  # viewers read too
    assert [r["id"] for r in only_failed] == [failed.public_id]
    assert [r["id"] for r in _csv(alice_client.get("/jobs/export.csv?q=title%3D%22%2B1+report%22"))] == [done.public_id]
    assert 'href="/jobs/export.csv?status=failed"' in alice_client.get("/jobs/?status=failed").content.decode()


def test_the_export_holds_the_newest_matching_jobs_up_to_its_bound(alice_client, submit, monkeypatch):
    monkeypatch.setattr("jobs.views.EXPORT_MAX", 3)
    jobs = [submit() for _ in range(5)]
    assert [r["id"] for r in _csv(alice_client.get("/jobs/export.csv"))] == [j.public_id for j in jobs[::-1][:3]]
    # A filter field that cannot be read is refused by name, never dropped (exporting every job) nor a 500.
    refused = alice_client.get("/jobs/export.csv?error_code=nope&status=nope&schedule=SP_X")
    assert refused.status_code == 400
    assert [part.split(":")[0] for part in refused.content.decode().split(". ") if ":" in part] == [
        "Status", "Error", "Schedule id"]


def test_the_form_says_each_payload_fields_rules_under_it(alice_client):
    form = alice_client.get("/jobs/new/?handler=pulse.sleep").context["form"]
    assert form["payload.steps"].help_text == "At least 1; at most 10000"
    assert form["payload.seconds"].help_text == "At least 0; at most 3600"
    form = alice_client.get("/jobs/new/?handler=pulse.fail").context["form"]
    assert form["payload.code"].help_text == ""  # a select lists its choices
    assert form["payload.message"].help_text == "At most 1000 characters"


def test_run_again_of_a_job_whose_handler_is_gone_says_so(alice_client, submit):
    job = submit("pulse.noop")
    Job.objects.filter(pk=job.pk).update(handler="retired.handler")
    response = alice_client.get(f"/jobs/new/?from={job.public_id}")
    assert response.status_code == 200 and response.context["form"] is None
    assert [str(m) for m in response.context["messages"]] == [
        f"{job.public_id}'s handler retired.handler is no longer deployed."]


def test_every_error_inside_a_nested_payload_field_shows_under_that_fields_input(alice_client, temp_handler):
    """The submit names `payload.options.format`; the form has an input for `options` only, so the
    errors fell back to the first one's message at the top, and the others were not shown."""
    temp_handler("test.nested_form", schema={
        "type": "object", "required": ["account"],
        "properties": {"account": {"type": "string"},
                       "options": {"type": "object", "required": ["format"],
                                   "properties": {"format": {"enum": ["pdf"]}, "dpi": {"type": "integer"}}}}},
    )(lambda ctx: None)
    fields = {"handler": "test.nested_form", "payload.account": "a", "payload.options": '{"dpi": "x"}',
              "priority": "0"}
    response = alice_client.post("/jobs/new/", fields)
    assert response.status_code == 400
    expected = ["dpi: 'x' is not of type 'integer'", "format: Required."]
    assert response.context["form"].errors == {"payload.options": expected}
    preview = alice_client.get("/jobs/new/preview/", {**fields})
    assert preview.context["fix"] == [("options", "; ".join(expected))]  # not run together
    assert not Job.objects.filter(handler="test.nested_form").exists()


def test_a_failed_jobs_page_shows_the_details_its_handler_gave_with_the_error(alice_client, submit, temp_handler):
    """JobError(details=…) reached only the API: the job's page showed the code and message."""
    from jobs.handlers import JobError
    from jobs.runner import run_job

    @temp_handler("test.detailed", max_attempts=1)
    def detailed(ctx):
        raise JobError("network_error", "orders service down", details={"status": 503, "url": "<b>x</b>"})

    job = submit("test.detailed")
    run_job(job.public_id)
    for url in (f"/jobs/{job.public_id}/", f"/jobs/{job.public_id}/status/"):
        body = alice_client.get(url).content.decode()
        assert ('<pre class="job-error-details">{\n  &quot;status&quot;: 503,\n  '
                '&quot;url&quot;: &quot;&lt;b&gt;x&lt;/b&gt;&quot;\n}</pre>') in body
    done = submit("pulse.noop")
    run_job(done.public_id)
    assert "job-error-details" not in alice_client.get(f"/jobs/{done.public_id}/").content.decode()


def test_the_page_title_names_the_team_for_people_in_several_and_says_when_the_list_is_filtered(
        alice_client, bob_client, umbrella):
    """Tabs of alice's two teams read alike ("Jobs · Pulse"), filtered or not."""
    assert "<title>Jobs · Acme · Pulse</title>" in alice_client.get("/jobs/").content.decode()
    assert ("<title>Jobs (filtered) · Acme · Pulse</title>"
            in alice_client.get("/jobs/?status=failed").content.decode())
    assert "<title>Jobs · Pulse</title>" in bob_client.get("/jobs/").content.decode()  # one team: no need
    assert "<title>Acme: overview · Pulse</title>" in alice_client.get("/").content.decode()


def test_a_restarted_daemon_shows_its_runs_not_a_count_past_its_attempts(alice_client, submit, temp_handler):
    """A daemon's attempts count its restarts: the list and its page read "8/3", as if it had run
    past its limit of tries, which a daemon does not have."""
    @temp_handler("test.daemon_row", daemon=True)
    def forever(ctx):
        ctx.sleep(60)

    job = submit("test.daemon_row")
    Job.objects.filter(pk=job.pk).update(attempts=8)
    listing = alice_client.get("/jobs/").content.decode()
    detail = alice_client.get(f"/jobs/{job.public_id}/").content.decode()
    assert '<td data-field="attempts">8 <span class="quiet">(a daemon: no limit)</span></td>' in listing
    assert "<dt>Attempts</dt><dd>8 <span class=\"quiet\">(a daemon: no limit)</span></dd>" in detail
    assert "8/3" not in listing and "8/3" not in detail
