"""Exclusive handlers: one job at a time per team; the next is held until it ends, or refused."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from jobs.models import Job
from jobs.runner import Outcome, claim, run_job, settle
from jobs.services import job_submit
from pulse_site.errors import Conflict
from tests.conftest import token_client

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


@pytest.fixture
def exclusive(temp_handler):
    @temp_handler("test.hold_one", exclusive="hold")
    def hold_one(ctx):
        return "done"

    @temp_handler("test.refuse_one", exclusive="refuse")
    def refuse_one(ctx):
        return "done"

    @temp_handler("test.many")
    def many(ctx):
        return "done"


def test_a_second_job_of_a_hold_handler_waits_with_reason_exclusive_and_runs_after_the_first(acme, submit, exclusive):
    first, second = submit("test.hold_one"), submit("test.hold_one")
    assert claim(first.public_id) is not None
    run_job(second.public_id)
    second.refresh_from_db()
    assert second.status == Status.PAUSED
    assert second.hold_reasons == [{
        "kind": "exclusive", "handler": "test.hold_one", "running": first.public_id, "resume_at": None,
        "message": f"test.hold_one runs one job at a time; it starts when {first.public_id} ends.",
    }]

    settle(job_pk=first.pk, attempt=1, outcome=Outcome(ok=True))
    second.refresh_from_db()
    assert second.status == Status.QUEUED and second.hold_reasons == []
    run_job(second.public_id)
    second.refresh_from_db()
    assert second.status == Status.COMPLETED


def test_the_held_jobs_row_and_page_link_the_job_it_waits_for(acme, alice_client, submit, exclusive):
    first, second = submit("test.hold_one"), submit("test.hold_one")
    claim(first.public_id)
    run_job(second.public_id)
    link = f'it starts when <a href="/jobs/{first.public_id}/"><code>{first.public_id}</code></a> ends.'
    assert link in alice_client.get("/jobs/").content.decode()
    assert link in alice_client.get(f"/jobs/{second.public_id}/").content.decode()


def test_two_held_jobs_of_one_exclusive_handler_are_released_one_at_a_time(acme, submit, exclusive):
    first, second, third = (submit("test.hold_one") for _ in range(3))
    claim(first.public_id)
    run_job(second.public_id)
    run_job(third.public_id)
    settle(job_pk=first.pk, attempt=1, outcome=Outcome(ok=True))
    statuses = sorted(Job.objects.filter(pk__in=[second.pk, third.pk]).values_list("status", flat=True))
    assert statuses == [Status.PAUSED, Status.QUEUED]


def test_a_refuse_handler_answers_409_while_one_runs_and_creates_nothing(acme, submit, exclusive):
    running = submit("test.refuse_one")
    claim(running.public_id)
    response = token_client(acme).post("/api/v1/jobs/", {"handler": "test.refuse_one"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "handler_busy"
    assert response.json()["error"]["fields"] == {"handler": [f"Busy: {running.public_id} is running."]}
    assert Job.objects.filter(handler="test.refuse_one").count() == 1


def test_a_refuse_handler_accepts_a_job_once_the_running_one_ended(acme, submit, exclusive):
    running = submit("test.refuse_one")
    claim(running.public_id)
    settle(job_pk=running.pk, attempt=1, outcome=Outcome(ok=True))
    assert job_submit(team=acme, handler="test.refuse_one", payload={}, source="api").created


def test_exclusivity_is_per_team(acme, globex, submit, exclusive):
    claim(submit("test.refuse_one").public_id)
    claim(submit("test.hold_one").public_id)
    theirs = submit("test.hold_one", team=globex)
    assert job_submit(team=globex, handler="test.refuse_one", payload={}, source="api").created
    run_job(theirs.public_id)
    theirs.refresh_from_db()
    assert theirs.status == Status.COMPLETED


def test_jobs_of_an_ordinary_handler_run_side_by_side(acme, submit, exclusive):
    first, second = submit("test.many"), submit("test.many")
    assert claim(first.public_id) is not None
    assert claim(second.public_id) is not None


def test_the_handlers_list_says_which_are_exclusive(acme, exclusive):
    handlers = {h["name"]: h for h in token_client(acme, "read").get("/api/v1/handlers/").json()}
    assert handlers["test.hold_one"]["exclusive"] == "hold"
    assert handlers["test.refuse_one"]["exclusive"] == "refuse"
    assert handlers["test.many"]["exclusive"] is None


def test_a_handler_declaring_an_unknown_exclusive_mode_is_refused(temp_handler):
    with pytest.raises(ValueError, match="exclusive must be"):
        temp_handler("test.bad", exclusive="queue")(lambda ctx: None)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL; SQLite serializes writers")
def test_two_workers_admitting_two_jobs_of_an_exclusive_handler_at_once_start_only_one(acme, submit, exclusive):
    jobs = [submit("test.hold_one") for _ in range(2)]
    barrier = threading.Barrier(2)

    def admit(job: Job) -> None:
        try:
            barrier.wait(timeout=10)
            claim(job.public_id)
        finally:
            connection.close()

    threads = [threading.Thread(target=admit, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(Job.objects.filter(handler="test.hold_one").values_list("status", flat=True))
    assert statuses == [Status.PAUSED, Status.RUNNING]
