from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Job
from jobs.runner import run_job
from jobs.services import job_cancel, job_submit
from tests.conftest import pages_from, token_client

JOB_ROUTES = ["", "attempts/", "stages/", "logs/", "children/"]
JOB_ACTIONS = ["cancel/", "pause/", "resume/", "retry/", "start/"]


def post(client, path, body=None, **headers):
    return client.post(f"/api/v1/{path}", body or {}, format="json", **headers)


def test_a_token_submits_a_job_and_reads_it_back(acme, acme_api):
    created = post(acme_api, "jobs/", {"handler": "pulse.sleep", "payload": {"steps": 2, "seconds": 0}})
    assert created.status_code == 201
    body = created.json()
    assert body["id"].startswith("JB_") and body["status"] == "queued" and body["would_hold"] == []
    assert body["cost_estimate"] == "0" and body["payload"] == {"steps": 2, "seconds": 0}
    read = acme_api.get(f"/api/v1/jobs/{body['id']}/")
    assert read.status_code == 200 and read.json()["handler"] == "pulse.sleep"


def test_a_bad_payload_answers_400_naming_the_field(acme_api):
    response = post(acme_api, "jobs/", {"handler": "pulse.sleep", "payload": {"steps": "many"}})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"payload.steps": ["'many' is not of type 'integer'"]}
    assert not Job.objects.exists()


def test_a_refusal_says_back_a_long_rejected_value_cut_short(acme_api):
    """A 100,000-character title over its 200 is not echoed whole in the error (nor in every form
    and log that shows it): its start, and how long it was."""
    title = "x" * 100_000
    response = post(acme_api, "jobs/", {"handler": "demo.report", "payload": {"title": title}})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "payload.title": [f"'{'x' * 60}… (100,000 characters) is too long"]}
    short = post(acme_api, "jobs/", {"handler": "demo.report", "payload": {"title": 7}})
    assert short.json()["error"]["fields"] == {"payload.title": ["7 is not of type 'string'"]}
    assert not Job.objects.exists()


def test_an_unknown_handler_answers_400(acme_api):
    response = post(acme_api, "jobs/", {"handler": "nope"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_handler"
    assert response.json()["error"]["fields"] == {"handler": ["Unknown handler 'nope'."]}


def test_a_read_only_token_cannot_submit(acme_api_read):
    assert post(acme_api_read, "jobs/", {"handler": "pulse.noop"}).status_code == 403
    assert not Job.objects.exists()


def test_an_idempotency_key_returns_the_first_job_and_409s_on_another_body(acme_api):
    first = post(acme_api, "jobs/", {"handler": "pulse.noop", "payload": {"a": 1}}, HTTP_IDEMPOTENCY_KEY="abc")
    again = post(acme_api, "jobs/", {"handler": "pulse.noop", "payload": {"a": 1}}, HTTP_IDEMPOTENCY_KEY="abc")
    other = post(acme_api, "jobs/", {"handler": "pulse.noop", "payload": {"a": 2}}, HTTP_IDEMPOTENCY_KEY="abc")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json()["id"] == first.json()["id"]
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert Job.objects.count() == 1


def test_an_idempotency_key_is_the_teams_and_its_jobs_so_a_deleted_job_frees_it(acme, acme_api):
    """As the README and the schema say: another token of the team repeating the key gets the first
    job; once that job is deleted, the key makes a new one."""
    body = {"handler": "pulse.noop"}
    first = post(acme_api, "jobs/", body, HTTP_IDEMPOTENCY_KEY="k2").json()["id"]
    other_token = post(token_client(acme), "jobs/", body, HTTP_IDEMPOTENCY_KEY="k2")
    assert (other_token.status_code, other_token.json()["id"]) == (200, first)
    job_cancel(job=Job.objects.get(public_id=first), by="alice")
    assert acme_api.delete(f"/api/v1/jobs/{first}/").status_code == 204
    again = post(acme_api, "jobs/", body, HTTP_IDEMPOTENCY_KEY="k2")
    assert again.status_code == 201 and again.json()["id"] != first


def test_a_repeat_answers_with_the_jobs_current_would_hold_as_the_first_answer_did(acme, acme_api):
    """A repeat answered `would_hold: []` whatever held the job: a client retrying after a timeout
    read that nothing stood in its job's way while the queue's pause did."""
    from jobs.models import QueuePause
    from jobs.pausing import queue_pause, queue_resume
    from jobs.services import job_pause, job_resume

    pause = queue_pause(scope=QueuePause.Scope.TEAM, team=acme, reason="Deploying", by="alice")
    body = {"handler": "pulse.noop", "payload": {"a": 1}}
    first = post(acme_api, "jobs/", body, HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == 201
    [reason] = first.json()["would_hold"]
    assert reason["kind"] == "queue_paused" and "Deploying" in reason["message"]
    again = post(acme_api, "jobs/", body, HTTP_IDEMPOTENCY_KEY="k1")
    assert again.status_code == 200 and again.json()["would_hold"] == first.json()["would_hold"]
    assert set(again.json()) == set(first.json())

    # Held now (a person's hold): the reasons it is held for.
    job = Job.objects.get(public_id=first.json()["id"])
    job_pause(job=job, by="bob")
    held = post(acme_api, "jobs/", body, HTTP_IDEMPOTENCY_KEY="k1").json()
    assert held["status"] == "paused"
    assert held["would_hold"] == held["hold_reasons"] == [{"kind": "manual", "message": "Held by bob", "by": "bob"}]

    # Nothing in its way any more: an empty list, the truth now.
    queue_resume(pause=pause, by="alice")
    job_resume(job=job, by="bob")
    assert post(acme_api, "jobs/", body, HTTP_IDEMPOTENCY_KEY="k1").json()["would_hold"] == []


def test_a_repeat_of_a_job_that_ran_says_nothing_would_hold_it(acme, acme_api):
    body = {"handler": "pulse.noop", "payload": {}}
    first = post(acme_api, "jobs/", body, HTTP_IDEMPOTENCY_KEY="done")
    run_job(first.json()["id"])
    again = post(acme_api, "jobs/", body, HTTP_IDEMPOTENCY_KEY="done").json()
    assert (again["status"], again["would_hold"]) == ("completed", [])


def test_a_repeat_of_a_delayed_submit_is_the_same_request_however_late_it_comes(acme_api, time_machine):
    from datetime import UTC, datetime

    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    time_machine.move_to(now, tick=False)
    body = {"handler": "pulse.noop", "payload": {"a": 1}, "delay_seconds": 90}
    first = post(acme_api, "jobs/", body, HTTP_IDEMPOTENCY_KEY="later")
    time_machine.move_to(now + timedelta(seconds=7), tick=False)  # a client's retry after a timeout
    again = post(acme_api, "jobs/", body, HTTP_IDEMPOTENCY_KEY="later")
    other = post(acme_api, "jobs/", {**body, "delay_seconds": 60}, HTTP_IDEMPOTENCY_KEY="later")
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 409)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["run_after"] == first.json()["run_after"] == "2026-06-01T10:01:30+00:00"
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_identical_requests_make_one_job(acme):
    barrier = threading.Barrier(10)
    answers: list[int] = []
    ids: set[str] = set()

    client = token_client(acme)

    def call():
        barrier.wait()
        try:
            response = post(client, "jobs/", {"handler": "pulse.noop", "payload": {"x": 1}}, HTTP_IDEMPOTENCY_KEY="same")
            answers.append(response.status_code)
            ids.add(response.json()["id"])
        finally:
            connection.close()

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers) == [200] * 9 + [201]
    assert len(ids) == 1
    assert Job.objects.filter(team=acme).count() == 1


def test_the_list_is_newest_first_filtered_and_keyset_paginated(acme, acme_api):
    jobs = [job_submit(team=acme, handler="pulse.noop", payload={"n": n}, source="api").job for n in range(5)]
    job_submit(team=acme, handler="pulse.sleep", payload={}, source="dashboard")
    page = acme_api.get("/api/v1/jobs/?handler=pulse.noop&limit=2").json()
    assert [j["id"] for j in page["results"]] == [jobs[4].public_id, jobs[3].public_id]
    page2 = acme_api.get(f"/api/v1/jobs/?handler=pulse.noop&limit=2&cursor={page['next_cursor']}").json()
    assert [j["id"] for j in page2["results"]] == [jobs[2].public_id, jobs[1].public_id]
    only_dashboard = acme_api.get("/api/v1/jobs/?source=dashboard").json()["results"]
    assert [j["handler"] for j in only_dashboard] == ["pulse.sleep"]
    assert acme_api.get("/api/v1/jobs/?status=exploded").status_code == 400


@pytest.mark.parametrize("query", ["handler=pulse.noop", "source=api", "q=batch=1"])
def test_a_client_that_deletes_the_jobs_of_each_page_pages_on_to_the_end(acme, acme_api, query):
    """A clean-up script reads a page, deletes its jobs and asks for the next: the cursor named the
    page's last job, the one just deleted, and the next page was a 400 "Not a job of this team"."""
    jobs = [Job.objects.create(team=acme, handler="pulse.noop", payload={"batch": 1}, source="api",
                               status=Job.Status.COMPLETED) for _ in range(5)]
    seen, cursor = [], ""
    while True:
        page = acme_api.get(f"/api/v1/jobs/?{query}&limit=2&cursor={cursor}")
        assert page.status_code == 200, page.json()
        for job in page.json()["results"]:
            seen.append(job["id"])
            assert acme_api.delete(f"/api/v1/jobs/{job['id']}/").status_code == 204
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [job.public_id for job in reversed(jobs)]
    assert not Job.objects.exists()


def test_a_creation_range_that_ends_before_it_starts_is_refused_by_name(acme, acme_api):
    """Swapped bounds answered an empty page, as if the team had no jobs then."""
    job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    bounds = "created_after=2026-06-02T00:00:00Z&created_before=2026-06-01T00:00:00Z"
    listed = acme_api.get(f"/api/v1/jobs/?{bounds}")
    bulk = post(acme_api, "jobs/bulk/matching/", {"action": "cancel", "filter": {
        "created_after": "2026-06-02T00:00:00Z", "created_before": "2026-06-02T00:00:00Z"}})
    assert (listed.status_code, bulk.status_code) == (400, 400)
    assert listed.json()["error"]["fields"] == {"created_before": ["Later than created_after."]}
    assert bulk.json()["error"]["fields"] == {"filter.created_before": ["Later than created_after."]}
    assert Job.objects.get().status == "queued"



@pytest.mark.parametrize("query", ["handler=pulse.noop", "source=api"])
def test_a_job_committed_after_the_page_above_it_was_read_is_on_the_next_page(acme, acme_api, query):
    """Ids are handed out when a submit inserts, and a submit that took longer commits after a
    quicker one with a higher id: a page can be read while a job below its last row is not yet
    visible. The cursor named the next page's first row as it was then, so the next page started
    below the late job, and no page ever listed it."""
    jobs = [job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job for _ in range(5)]
    late = jobs.pop(2)  # its id is taken, its transaction not yet committed: invisible
    Job.objects.filter(pk=late.pk).delete()
    first = acme_api.get(f"/api/v1/jobs/?{query}&limit=2").json()
    assert [j["id"] for j in first["results"]] == [jobs[3].public_id, jobs[2].public_id]
    late.save(force_insert=True)  # committed now, with the id it was given

    assert pages_from(acme_api, f"/api/v1/jobs/?{query}&limit=2", first["next_cursor"]) == [
        late.public_id, jobs[1].public_id, jobs[0].public_id]


@pytest.mark.parametrize("query", ["handler=pulse.noop", "source=api"])
def test_the_next_page_is_read_when_the_job_it_would_start_with_is_deleted_meanwhile(acme, acme_api, query):
    """The cursor named the next page's first job, which another client (or the dashboard's bulk
    delete, or the retention) may delete before this one asks for it: the next page was a 400
    'Not a job of this team', and the dashboard's Load more ended the list there."""
    jobs = [job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job for _ in range(5)]
    first = acme_api.get(f"/api/v1/jobs/?{query}&limit=2").json()
    Job.objects.filter(pk=jobs[2].pk).delete()
    second = acme_api.get(f"/api/v1/jobs/?{query}&limit=2&cursor={first['next_cursor']}")
    assert second.status_code == 200, second.json()
    assert [j["id"] for j in second.json()["results"]] == [jobs[1].public_id, jobs[0].public_id]


def test_another_teams_cursor_is_refused(acme, acme_api, globex, globex_api):
    for _ in range(3):
        job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    cursor = acme_api.get("/api/v1/jobs/?limit=1").json()["next_cursor"]
    job_submit(team=globex, handler="pulse.noop", payload={}, source="api")
    refused = globex_api.get(f"/api/v1/jobs/?cursor={cursor}")
    assert refused.status_code == 400
    assert list(refused.json()["error"]["fields"]) == ["cursor"]
    altered = cursor[:5] + ("B" if cursor[5] == "A" else "A") + cursor[6:]
    assert acme_api.get(f"/api/v1/jobs/?cursor={altered}").status_code == 400
    assert acme_api.get(f"/api/v1/jobs/?cursor={cursor}").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_attempts_stages_and_logs_describe_a_finished_job(acme, acme_api, settings):
    settings.PULSE_PROGRESS_INTERVAL = 0
    job = job_submit(team=acme, handler="demo.report", payload={"delay": 0}, source="api").job
    run_job(job.public_id)
    attempts = acme_api.get(f"/api/v1/jobs/{job.public_id}/attempts/").json()
    assert [(a["number"], a["outcome"], a["cost"]) for a in attempts] == [(1, "completed", "0.07")]
    stages = acme_api.get(f"/api/v1/jobs/{job.public_id}/stages/").json()
    assert [s["stage"] for s in stages] == ["collect", "analyse", "publish"]
    assert [t["task"] for t in stages[0]["tasks"]] == ["orders", "refunds", "customers"]
    logs = acme_api.get(f"/api/v1/jobs/{job.public_id}/logs/?stage=analyse&task=totals").json()
    assert [line["message"].split(" done")[0] for line in logs] == ["analyse: totals started", "analyse: totals"]


def test_actions_move_the_job_and_refuse_impossible_moves(acme, acme_api):
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    assert post(acme_api, f"jobs/{job.public_id}/pause/").json()["status"] == "paused"
    assert post(acme_api, f"jobs/{job.public_id}/resume/").json()["status"] == "queued"
    assert post(acme_api, f"jobs/{job.public_id}/cancel/").json()["status"] == "cancelled"
    refused = post(acme_api, f"jobs/{job.public_id}/cancel/")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_finished"
    assert post(acme_api, f"jobs/{job.public_id}/retry/").json()["status"] == "queued"


def test_a_job_held_by_a_limit_is_not_resumed_by_the_api_as_its_page_offers_no_resume(acme, acme_api):
    """A Resume of a job a limit holds would only send it back to the same hold (the ticker releases
    it when the limit allows): the API refuses it, saying so, as the job's page offers no Resume."""
    reasons = [{"kind": "budget", "message": "Daily limit of 1 reached", "resume_at": None}]
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    Job.objects.filter(pk=job.pk).update(status=Job.Status.PAUSED, hold_reasons=reasons)
    before = Job.objects.filter(pk=job.pk).values().get()
    refused = post(acme_api, f"jobs/{job.public_id}/resume/")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "held_by_limits" and "released by itself" in error["message"]
    assert Job.objects.filter(pk=job.pk).values().get() == before


def test_the_api_says_who_cancelled_a_job_and_a_running_ones_cancel_asked_by(acme, acme_api):
    queued = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    running = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    Job.objects.filter(pk=running.pk).update(status=Job.Status.RUNNING)

    assert post(acme_api, f"jobs/{queued.public_id}/cancel/").json()["cancelled_by"] == "token write token"
    body = post(acme_api, f"jobs/{running.public_id}/cancel/").json()
    assert (body["status"], body["cancel_requested"], body["cancelled_by"]) == ("running", True, "token write token")
    assert acme_api.get(f"/api/v1/jobs/{queued.public_id}/").json()["cancelled_by"] == "token write token"
    assert post(acme_api, f"jobs/{queued.public_id}/retry/").json()["cancelled_by"] is None


UNKNOWN = ["Unknown field."]


@pytest.mark.parametrize("action, body, message, fields", [
    ("retry/", {"payload": {"x": 1}, "priority": 50}, "payload: Unknown field.", {"payload": UNKNOWN, "priority": UNKNOWN}),
    ("cancel/", {"cascade": False}, "cascade: Unknown field.", {"cascade": UNKNOWN}),
    ("pause/", {"reason": "later"}, "reason: Unknown field.", {"reason": UNKNOWN}),
    ("resume/", [1, 2, 3], "body: Expected an object, not a list.", {"body": ["Expected an object, not a list."]}),
    ("start/", {"run_after": None}, "run_after: Unknown field.", {"run_after": UNKNOWN}),
])
def test_an_action_refuses_a_body_by_name_and_leaves_the_job_as_it_was(acme, acme_api, action, body, message, fields):
    """An action takes no body, yet one was dropped: a retry sent a new payload and priority answered
    200 and ran the job with its old ones."""
    job = job_submit(team=acme, handler="pulse.noop", payload={"x": 0}, source="api").job
    if action == "retry/":
        job_cancel(job=job, by="alice")
    before = list(Job.objects.values())
    response = acme_api.post(f"/api/v1/jobs/{job.public_id}/{action}", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "validation_error", "message": message, "fields": fields}
    assert list(Job.objects.values()) == before


def test_an_action_takes_no_body_an_empty_one_or_an_empty_object(acme, acme_api):
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    url = f"/api/v1/jobs/{job.public_id}/"
    assert acme_api.post(url + "pause/").json()["status"] == "paused"  # no body, no Content-Type
    assert acme_api.post(url + "resume/", "", content_type="application/json").json()["status"] == "queued"
    assert acme_api.post(url + "cancel/", {}, format="json").json()["status"] == "cancelled"


def test_handlers_and_stats_are_listed(acme, acme_api):
    names = [h["name"] for h in acme_api.get("/api/v1/handlers/").json()]
    assert {"pulse.sleep", "pulse.noop", "pulse.fail", "http.request", "demo.report"} <= set(names)
    job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    stats = acme_api.get("/api/v1/stats/").json()
    assert stats["totals"]["queued"] == 1 and stats["handlers"]["pulse.noop"]["queued"] == 1
    system = stats["system"]
    assert (system["jobs_queued"], system["jobs_running"], system["workers_active"]) == (1, 0, 0)
    assert system["workers_total"] >= 1 and system["memory_total_gb"] > 0


def test_the_workers_a_team_sees_busy_are_those_running_its_own_jobs(acme, globex, acme_api, alice_client):
    """The workers are shared: another team's running job is not counted (how busy the others
    are is theirs), and the total is the live workers' beats, as the executor counts them."""
    from django.utils import timezone

    from jobs.models import WorkerBeat

    now = timezone.now()
    for n in range(3):
        WorkerBeat.objects.create(name=f"w{n}", cluster="host-a:100", started_at=now, seen_at=now)
    WorkerBeat.objects.create(name="gone", cluster="host-b:200", started_at=now, seen_at=now - timedelta(hours=1))
    theirs = job_submit(team=globex, handler="pulse.noop", payload={}, source="api").job
    Job.objects.filter(pk=theirs.pk).update(status=Job.Status.RUNNING)

    system = acme_api.get("/api/v1/stats/").json()["system"]
    assert (system["workers_active"], system["workers_total"], system["workers_source"]) == (0, 3, "beats")
    assert [(c["id"], c["workers"]) for c in system["clusters"]] == [("host-a:100", 3)]
    assert '<span class="counter-value" id="count-workers">0/3</span>' in alice_client.get("/").content.decode()

    ours = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    Job.objects.filter(pk=ours.pk).update(status=Job.Status.RUNNING)
    assert acme_api.get("/api/v1/stats/").json()["system"]["workers_active"] == 1


@pytest.mark.parametrize("suffix", JOB_ROUTES)
def test_charlie_gets_404_for_acmes_job_routes(acme, globex_api, suffix):
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    assert globex_api.get(f"/api/v1/jobs/{job.public_id}/{suffix}").status_code == 404


@pytest.mark.parametrize("action", JOB_ACTIONS)
def test_charlie_cannot_act_on_acmes_jobs(acme, globex_api, action):
    job = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    before = Job.objects.values().get(pk=job.pk)
    assert post(globex_api, f"jobs/{job.public_id}/{action}").status_code == 404
    assert Job.objects.values().get(pk=job.pk) == before


def test_charlies_list_and_stats_show_nothing_of_acme(acme, globex_api):
    job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    assert globex_api.get("/api/v1/jobs/").json()["results"] == []
    assert globex_api.get("/api/v1/stats/").json()["totals"]["queued"] == 0


def test_a_session_member_can_submit_and_a_viewer_cannot(acme, bob, vic):
    from rest_framework.test import APIClient

    bobs, vics = APIClient(), APIClient()
    bobs.force_login(bob)
    vics.force_login(vic)
    assert post(bobs, "jobs/", {"handler": "pulse.noop"}).status_code == 201
    assert post(vics, "jobs/", {"handler": "pulse.noop"}).status_code == 403
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_finished_jobs_are_counted_from_the_hourly_rollup(acme, acme_api):
    done = job_submit(team=acme, handler="pulse.noop", payload={}, source="api").job
    failed = job_submit(team=acme, handler="pulse.fail", payload={"code": "parse_error"}, source="api").job
    run_job(done.public_id)
    run_job(failed.public_id)
    stats = acme_api.get("/api/v1/stats/").json()
    assert stats["handlers"]["pulse.noop"]["completed"] == 1
    assert stats["handlers"]["pulse.fail"]["failed"] == 1
    assert (stats["totals"]["completed"], stats["totals"]["failed"], stats["totals"]["queued"]) == (1, 1, 0)


def test_the_list_filters_by_the_schedule_that_submitted_the_job(acme, acme_api):
    schedule_id = "SP_01M81H2V5QTVMSFSGE610M1H48"
    mine = job_submit(team=acme, handler="pulse.noop", payload={}, source="schedule", origin=schedule_id).job
    job_submit(team=acme, handler="pulse.noop", payload={}, source="api")
    page = acme_api.get(f"/api/v1/jobs/?schedule={schedule_id}").json()
    assert [(j["id"], j["origin"]) for j in page["results"]] == [(mine.public_id, schedule_id)]
    assert acme_api.get("/api/v1/jobs/?schedule=nope").json()["error"]["fields"] == {"schedule": ["A schedule id (SP_…)."]}


def test_a_job_asked_to_start_later_waits_until_then(acme, acme_api, time_machine):
    from datetime import UTC, datetime, timedelta

    from jobs.dispatch import _ready

    now = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    time_machine.move_to(now, tick=False)
    at = post(acme_api, "jobs/", {"handler": "pulse.noop", "run_after": "2026-06-01T12:30:00+02:00"})
    later = post(acme_api, "jobs/", {"handler": "pulse.noop", "delay_seconds": 90})
    assert (at.status_code, later.status_code) == (201, 201)
    assert datetime.fromisoformat(at.json()["run_after"]) == datetime(2026, 6, 1, 10, 30, tzinfo=UTC)
    assert datetime.fromisoformat(later.json()["run_after"]) == now + timedelta(seconds=90)
    assert not _ready(now).filter(public_id__in=[at.json()["id"], later.json()["id"]]).exists()
    assert _ready(now + timedelta(seconds=90)).filter(public_id=later.json()["id"]).exists()
    run_job(at.json()["id"])  # a worker handed it early starts nothing before its time
    assert Job.objects.get(public_id=at.json()["id"]).status == "queued"
    time_machine.move_to(now + timedelta(minutes=30), tick=False)
    run_job(at.json()["id"])
    assert Job.objects.get(public_id=at.json()["id"]).status == "completed"


@pytest.mark.parametrize(("body", "field", "reason"), [
    ({"run_after": "soon"}, "run_after", None),
    ({"run_after": "2027-06-02T10:00:00Z"}, "run_after", "At most 365 days ahead; use a schedule for later runs."),
    ({"delay_seconds": -1}, "delay_seconds", None),
    ({"run_after": "2026-06-01T12:30:00Z", "delay_seconds": 5}, "delay_seconds",
     "Give run_after or delay_seconds, not both."),
])
def test_a_bad_start_time_is_a_400_naming_the_field_and_makes_no_job(acme_api, time_machine, body, field, reason):
    from datetime import UTC, datetime

    time_machine.move_to(datetime(2026, 6, 1, 10, 0, tzinfo=UTC), tick=False)
    response = post(acme_api, "jobs/", {"handler": "pulse.noop", **body})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == [field]
    if reason:
        assert response.json()["error"]["fields"][field] == [reason]
    assert not Job.objects.exists()


def test_a_job_waiting_for_a_later_start_is_started_now_on_request(acme, acme_api):
    waiting = post(acme_api, "jobs/", {"handler": "pulse.noop", "delay_seconds": 3600}).json()
    started = post(acme_api, f"jobs/{waiting['id']}/start/")
    assert started.status_code == 200 and started.json()["run_after"] is None
    from jobs.dispatch import _ready
    from pulse_site.live.models import Event

    assert _ready(timezone.now()).filter(public_id=waiting["id"]).exists()
    assert Event.objects.get(subject=waiting["id"], kind="job.expedited").payload["by"].startswith("token ")
    again = post(acme_api, f"jobs/{waiting['id']}/start/")  # nothing to wait for any more
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_waiting"


def test_a_schedules_run_written_ahead_of_its_slot_is_not_started_early(acme, acme_api):
    from datetime import timedelta

    staged = job_submit(team=acme, handler="pulse.noop", payload={}, source=Job.Source.SCHEDULE,
                        origin="SP_01M903RGN69NGMEA2Q8RRNVS1S", run_after=timezone.now() + timedelta(seconds=30)).job
    refused = post(acme_api, f"jobs/{staged.public_id}/start/")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "schedule_slot"
    assert Job.objects.get(pk=staged.pk).run_after is not None


def test_the_list_takes_the_dashboards_search_words(acme_api, acme, globex):
    from jobs.runner import run_job
    from jobs.services import job_submit

    def submit(team, handler, payload):
        return job_submit(team=team, handler=handler, payload=payload, source="api").job

    eu = submit(acme, "pulse.noop", {"region": "eu", "user": 42})
    submit(acme, "pulse.noop", {"region": "us"})
    submit(globex, "pulse.noop", {"region": "eu"})
    failed = submit(acme, "pulse.fail", {"code": "network_error", "retryable": False})
    run_job(failed.public_id)

    def ids(query: str) -> list[str]:
        answer = acme_api.get(f"/api/v1/jobs/?{query}")
        assert answer.status_code == 200, answer.content
        return [job["id"] for job in answer.json()["results"]]

    assert ids("q=region%3Deu") == [eu.public_id]
    assert ids("q=pulse.noop+user%3D42") == [eu.public_id]
    assert ids("q=failed+network_error") == [failed.public_id]
    refused = acme_api.get("/api/v1/jobs/?q=failed+nonsense+a__b%3D1")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"q": [
        "“nonsense” is not a status, a handler, an error code or key=value.",
        "“a__b” is not a payload key (letters, digits, _ and -)."]}
