"""Daemon handlers: no timeout, restarted with backoff when they fail or return, ended by cancel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
from django.db import connection

from budgets.services import budget_policy_update
from jobs.models import Attempt, Job, TaskLog
from jobs.runner import claim, run_job
from jobs.services import job_cancel
from pulse_site.live.models import Event
from tests.browser.conftest import asgi_server, browser, login_as, page, playwright  # noqa: F401
from tests.conftest import token_client
from tests.jobs import daemon_handlers  # noqa: F401  (the daemons the real cluster runs too)

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


def test_a_daemon_that_has_restarted_a_thousand_times_still_restarts_within_its_cap(submit, temp_handler,
                                                                                      time_machine):
    """Its attempt counts every restart, and 2.0 × 2 ** (attempt - 1) past about 1,024 is no
    float: the backoff raised OverflowError in the settle, and the job stayed running (the
    ticker's rescue then failed on it every second)."""
    @temp_handler("test.crashy_float", daemon=True, backoff_base=2.0, backoff_cap=40.0)
    def crashy(ctx):
        raise RuntimeError("lost the socket")

    time_machine.move_to("2026-03-01 12:00Z", tick=False)
    job = submit("test.crashy_float")
    Job.objects.filter(pk=job.pk).update(attempts=1_100)
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.attempts == 1_101
    assert 20 <= (job.run_after - job.updated_at).total_seconds() <= 40  # its cap


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
    row = section[section.index(f'id="daemon-{crashy.public_id}"'):].split("</tr>")[0]
    assert "restarting" in row and '<td data-label="Restarts" class="num">1</td>' in row
    row = section[section.index(f'id="daemon-{running.public_id}"'):].split("</tr>")[0]
    assert "(up " in row and "2\xa0hours" in row and '<td data-label="Restarts" class="num">0</td>' in row
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


# --- On a real django-q2 cluster and ticker ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return f"sqlite:///{db['NAME']}"


@pytest.fixture
def cluster(settings, monkeypatch):
    """`manage.py qcluster` and `pulse_ticker` against the test database, on a queue of this test's own."""
    name = f"pulse-daemon-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("PULSE_QUEUE_NAME", name)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "name": name}
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "PREFIX", name, raising=False)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", name, raising=False)
    env = {**os.environ, "DATABASE_URL": _database_url(), "PULSE_QUEUE_NAME": name, "PULSE_LEASE_SECONDS": "3",
           "PULSE_CANCEL_POLL_MS": "100", "PULSE_TICK_MS": "200", "PULSE_WORKERS": "2",
           "PULSE_WORKER_BEAT_SECONDS": "1",
           "PULSE_HANDLER_MODULES": "jobs.handlers.builtin,tests.jobs.daemon_handlers"}
    started = [subprocess.Popen([sys.executable, "manage.py", command], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
               for command in ("qcluster", "pulse_ticker")]
    yield
    for proc in started:
        # The main process only: a SIGTERM to the whole group can leave django-q2's cluster hanging.
        proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s")


def running_attempt(job: Job, number: int) -> bool:
    row = Job.objects.values("status", "attempts").get(pk=job.pk)
    return row == {"status": Status.RUNNING, "attempts": number}


@pytest.mark.timeout(180)
def test_on_a_real_cluster_daemons_restart_with_backoff_after_failures_and_returns_and_cancel_ends_them(
        acme, submit, cluster):
    flaky, quits = submit("test.daemon_flaky"), submit("test.daemon_quits")
    # Three failures, each restarted after a longer wait, then the fourth start keeps running.
    wait_for(lambda: running_attempt(flaky, daemon_handlers.FAILURES + 1), what="the flaky daemon's 4th start")
    tries = list(Attempt.objects.filter(job=flaky).order_by("number"))
    assert [(t.outcome, t.error_code) for t in tries[:3]] == [("retrying", "network_error")] * 3
    # The restart time each stop chose (its job.restarting event): backoff 0.5 s × 2^(n-1), jittered
    # in its upper half, so 0.25–0.5 s, 0.5–1 s, 1–2 s; and no restart came before its time. (The
    # restarts' own gaps add up to a ticker round on top, so they are not compared with each other.)
    restart_at = [datetime.fromisoformat(e.payload["run_after"]) for e in
                  Event.objects.filter(subject=flaky.public_id, kind="job.restarting").order_by("id")[:3]]
    backoffs = [(restart_at[n] - tries[n].finished_at).total_seconds() for n in range(3)]
    for backoff, (low, high) in zip(backoffs, ((0.25, 0.5), (0.5, 1.0), (1.0, 2.0)), strict=True):
        assert low - 0.001 <= backoff <= high + 0.001, backoffs
    assert all(tries[n + 1].started_at >= restart_at[n] for n in range(3))
    # A return without a cancel is an unexpected stop: restarted too, and said so.
    wait_for(lambda: running_attempt(quits, daemon_handlers.RETURNS + 1), what="the quitting daemon's 3rd start")
    stops = list(Attempt.objects.filter(job=quits, number__lte=daemon_handlers.RETURNS).values_list(
        "outcome", "error_message"))
    assert stops == [("retrying", "The daemon returned without being cancelled (an unexpected stop).")] * 2
    daemon = token_client(acme, "read").get(f"/api/v1/jobs/{flaky.public_id}/").json()["daemon"]
    assert daemon["restarts"] == 3 and daemon["up_since"] is not None
    # Cancelling stops both for good: no start after it, however long the ticker keeps going.
    for job in (flaky, quits):
        job_cancel(job=job, by="alice")
    wait_for(lambda: set(Job.objects.filter(pk__in=[flaky.pk, quits.pk]).values_list("status", flat=True))
             == {Status.CANCELLED}, what="both cancelled")
    attempts = dict(Job.objects.filter(pk__in=[flaky.pk, quits.pk]).values_list("pk", "attempts"))
    # Longer than either daemon's longest backoff (2 s and 1 s) and a dozen ticks: an uncancelled
    # daemon would have been started again by now.
    time.sleep(2.5)
    assert dict(Job.objects.filter(pk__in=[flaky.pk, quits.pk]).values_list("pk", "attempts")) == attempts
    assert set(Job.objects.filter(pk__in=[flaky.pk, quits.pk]).values_list("status", flat=True)) == {Status.CANCELLED}
    assert not Attempt.objects.filter(job__in=[flaky, quits], finished_at__isnull=True).exists()


def test_the_daemons_panel_fragment_is_the_teams_own_and_empty_without_daemons(alice_client, charlie_client, submit,
                                                                              daemons):
    running = submit("test.forever")
    claim(running.public_id)
    fragment = alice_client.get("/jobs/daemons/").content.decode()
    assert f'id="daemon-{running.public_id}"' in fragment
    assert 'id="daemons"' not in charlie_client.get("/jobs/daemons/").content.decode()


@pytest.mark.browser
def test_the_daemons_panel_follows_a_daemon_live_from_start_to_restart_to_cancel(alice, acme, submit, daemons, page,
                                                                                 login_as):
    login_as(alice)
    page.goto("/jobs/")
    page.wait_for_selector("#live-indicator[data-state=live]")
    assert page.query_selector("#daemons") is None
    crashy = submit("test.crashy")
    claim(crashy.public_id)
    row = f"#daemon-{crashy.public_id}"
    page.wait_for_selector(f"{row} td:nth-child(3):text-is('running')")
    assert page.inner_text(f"{row} td.num") == "0"
    failing = submit("test.crashy")  # a second one, run to its failure: restarting, one restart
    run_job(failing.public_id)
    page.wait_for_selector(f"#daemon-{failing.public_id} td:nth-child(3):text-is('restarting')")
    assert page.inner_text(f"#daemon-{failing.public_id} td.num") == "1"
    job_cancel(job=failing, by="alice")
    page.wait_for_selector(f"#daemon-{failing.public_id}", state="detached")
    assert page.query_selector(row) is not None  # the running one stays
