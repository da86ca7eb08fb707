"""Daemon handlers: no timeout, restarted with backoff when they fail or return, ended by cancel."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from budgets.services import budget_policy_update
from jobs.models import Job, TaskLog
from jobs.runner import claim, run_job
from jobs.services import job_cancel
from pulse_site.live.models import Event
from tests.conftest import token_client

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


@pytest.fixture
def daemons(temp_handler):
    @temp_handler("test.crashy", daemon=True, backoff_base=10, backoff_cap=40)
    def crashy(ctx):
        raise RuntimeError("lost the socket")

    @temp_handler("test.quitter", daemon=True, timeout=1)
    def quitter(ctx):
        ctx.sleep(1.5)  # longer than its declared timeout: a daemon has none
        return "bye"

    @temp_handler("test.forever", daemon=True)
    def forever(ctx):
        while not ctx.sleep(0.02):
            pass


def test_a_daemon_has_no_timeout(submit, daemons):
    assert submit("test.forever").timeout_seconds == 0


def test_a_failing_daemon_is_restarted_with_growing_backoff_and_never_fails(submit, daemons, time_machine):
    time_machine.move_to("2026-03-01 12:00Z", tick=False)
    job = submit("test.crashy")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.attempts == 1
    first_wait = (job.run_after - job.updated_at).total_seconds()
    assert 5 <= first_wait <= 10
    assert job.error_message == "RuntimeError: lost the socket"
    for _ in range(4):  # past max_attempts (3): a daemon keeps restarting
        time_machine.move_to(job.run_after)
        run_job(job.public_id)
        job.refresh_from_db()
    assert job.status == Status.QUEUED and job.attempts == 5
    assert 20 <= (job.run_after - job.updated_at).total_seconds() <= 40  # capped at 40
    assert Event.objects.filter(subject=job.public_id, kind="job.restarting").count() == 5
    last = TaskLog.objects.filter(job=job).order_by("-id").first()
    assert last.message.startswith("Daemon stopped after ") and "unknown: RuntimeError: lost the socket" in last.message


def test_a_daemon_that_returns_is_an_unexpected_stop_and_restarts_after_its_timeout_would_have_passed(submit, daemons):
    job = submit("test.quitter")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert job.error_code == "unknown"
    assert job.error_message == "The daemon returned without being cancelled (an unexpected stop)."


def test_cancelling_a_running_daemon_stops_it_for_good(submit, daemons, settings):
    settings.PULSE_CANCEL_POLL_SECONDS = 0.02
    job = submit("test.forever")

    def work() -> None:
        try:
            run_job(job.public_id)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 10
    while Job.objects.get(pk=job.pk).status != Status.RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    job_cancel(job=job, by="alice")
    worker.join(timeout=10)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.attempts == 1


def test_a_running_daemon_counts_against_concurrency(acme, submit, daemons):
    budget_policy_update(team=acme, changes={"max_concurrent": 1}, by=None)
    claim(submit("test.forever").public_id)
    other = submit("pulse.noop")
    run_job(other.public_id)
    other.refresh_from_db()
    assert other.status == Status.PAUSED and other.hold_reasons[0]["kind"] == "concurrency"


def test_the_jobs_page_shows_daemons_apart_with_uptime_and_restarts(alice_client, charlie_client, submit, daemons,
                                                                   time_machine):
    time_machine.move_to("2026-03-01 12:00Z", tick=False)
    crashy = submit("test.crashy")
    run_job(crashy.public_id)
    running = submit("test.forever")
    claim(running.public_id)
    time_machine.move_to("2026-03-01 14:00Z", tick=False)
    page = alice_client.get("/jobs/").content.decode()
    section = page[page.index('id="daemons"'):page.index('id="jobs"')]
    assert f'id="daemon-{crashy.public_id}"' in section and f'id="daemon-{running.public_id}"' in section
    row = section[section.index(f'id="daemon-{crashy.public_id}"'):]
    assert "restarting" in row[:600] and '<td class="num">1</td>' in row[:600]
    row = section[section.index(f'id="daemon-{running.public_id}"'):]
    assert "(up " in row[:900] and "2\xa0hours" in row[:900] and '<td class="num">0</td>' in row[:900]
    assert 'id="daemons"' not in charlie_client.get("/jobs/").content.decode()


def test_the_handlers_list_says_which_are_daemons(acme, daemons):
    handlers = {h["name"]: h for h in token_client(acme, "read").get("/api/v1/handlers/").json()}
    assert handlers["test.forever"]["daemon"] is True and handlers["pulse.noop"]["daemon"] is False


def test_the_api_gives_a_daemons_restarts_and_uptime_and_null_for_other_jobs(acme, submit, daemons, time_machine):
    api = token_client(acme, "read")
    time_machine.move_to("2026-03-01 12:00Z", tick=False)
    crashy = submit("test.crashy")
    run_job(crashy.public_id)  # failed once: waits to restart
    crashy.refresh_from_db()
    running = submit("test.forever")
    claim(running.public_id)
    plain = submit("pulse.noop")
    time_machine.move_to("2026-03-01 12:00:05Z", tick=False)
    detail = api.get(f"/api/v1/jobs/{crashy.public_id}/").json()["daemon"]
    assert detail == {"restarts": 1, "up_since": None, "uptime_seconds": None,
                      "restarting_at": crashy.run_after.isoformat()}
    listed = {job["id"]: job["daemon"] for job in api.get("/api/v1/jobs/").json()["results"]}
    assert listed[running.public_id] == {"restarts": 0, "up_since": "2026-03-01T12:00:00+00:00", "uptime_seconds": 5,
                                         "restarting_at": None}
    assert listed[plain.public_id] is None
