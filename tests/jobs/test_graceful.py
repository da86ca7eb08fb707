"""Graceful stop of a worker (issue 9 item 9), driven in process: the stop request is what the
worker's SIGTERM handler calls (jobs.stopping.request_stop). A stopping worker claims and chains
nothing, lets a running handler finish within PULSE_STOP_TIMEOUT, then interrupts it and puts the
job straight back in the queue. The real-process version is in tests/fault/test_kill.py."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest

from budgets.models import BudgetPolicy, Usage
from jobs import runner, stopping
from jobs.models import Attempt, Job
from jobs.runner import run_job

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


@pytest.fixture(autouse=True)
def not_stopping(settings):
    settings.PULSE_STOP_TIMEOUT = 5.0
    stopping.reset()
    yield
    stopping.reset()


def outcomes(job: Job) -> list[str]:
    return list(Attempt.objects.filter(job=job).order_by("number").values_list("outcome", flat=True))


def nothing_left_running(team) -> None:
    # The policy row appears at the team's first admission.
    assert list(BudgetPolicy.objects.filter(team=team).values_list("running", flat=True)) in ([], [0])
    assert sum(Usage.objects.filter(team=team).values_list("reserved", flat=True)) == 0


def test_a_handler_that_ends_within_the_stop_timeout_completes_and_nothing_is_chained_after_it(
        submit, temp_handler, settings, acme):
    settings.PULSE_DISPATCH_CAPACITY = 1
    settings.PULSE_CHAIN_SECONDS = 30

    @temp_handler("test.brief")
    def brief(ctx):
        stopping.request_stop()  # the SIGTERM arrives while the handler runs
        time.sleep(0.3)
        return {"ok": True}

    first, second = submit("test.brief"), submit("test.brief")
    run_job(first.public_id)
    first.refresh_from_db()
    assert first.status == Status.COMPLETED and first.result == {"ok": True}
    assert outcomes(first) == ["completed"]
    # Without the stop, this task would have gone straight on to the second job.
    assert Job.objects.get(pk=second.pk).status == Status.QUEUED
    assert outcomes(second) == []
    nothing_left_running(acme)


def test_past_the_stop_timeout_the_handler_is_interrupted_and_the_job_is_queued_again_at_once(
        submit, temp_handler, settings, acme):
    settings.PULSE_STOP_TIMEOUT = 0.5
    runs = []

    @temp_handler("test.long", timeout=60, max_attempts=3)
    def long(ctx):
        runs.append(ctx.attempt)
        if len(runs) > 1:
            return {"run": len(runs)}
        stopping.request_stop()
        for _ in range(200):
            try:
                time.sleep(0.05)
            except Exception:  # noqa: BLE001,S110  (a handler's broad except cannot swallow the interruption)
                pass
        return {"never": True}

    job = submit("test.long")
    started = time.monotonic()
    run_job(job.public_id)
    took = time.monotonic() - started
    job.refresh_from_db()
    assert took < 3, f"the interruption came {took:.2f} s after the stop (stop timeout 0.5 s)"
    assert job.status == Status.QUEUED
    assert job.error_code == "interrupted"
    assert job.run_after is None and job.lease_expires_at is None  # for another worker now, not after a lease
    assert job.attempts == 1 and job.max_attempts == 3  # the handler had started: it counts
    attempt = Attempt.objects.get(job=job, number=1)
    assert attempt.outcome == "interrupted" and attempt.error_code == "interrupted"
    assert "stop timeout" in attempt.error_message
    nothing_left_running(acme)

    stopping.reset()  # another worker, not stopping
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.result == {"run": 2}
    assert outcomes(job) == ["interrupted", "completed"]
    nothing_left_running(acme)


def test_a_task_received_while_stopping_goes_back_to_the_backlog_unclaimed(submit, temp_handler, acme):
    calls = []

    @temp_handler("test.count")
    def count(ctx):
        calls.append(ctx.job_id)

    job = submit("test.count")
    Job.objects.filter(pk=job.pk).update(dispatched_at=job.created_at)
    stopping.request_stop()
    run_job(job.public_id)
    job.refresh_from_db()
    assert calls == []
    assert job.status == Status.QUEUED and job.attempts == 0 and job.dispatched_at is None
    assert outcomes(job) == []
    nothing_left_running(acme)


def test_a_job_claimed_just_before_the_stop_is_put_back_without_using_up_an_attempt(
        submit, temp_handler, monkeypatch, acme):
    calls = []

    @temp_handler("test.count", max_attempts=2)
    def count(ctx):
        calls.append(ctx.attempt)

    real_claim = runner.claim

    def claim_then_stop(job_id):
        claimed = real_claim(job_id)
        stopping.request_stop()  # the SIGTERM lands between the claim and the handler's start
        return claimed

    monkeypatch.setattr(runner, "claim", claim_then_stop)
    job = submit("test.count")
    run_job(job.public_id)
    job.refresh_from_db()
    assert calls == []
    assert job.status == Status.QUEUED and job.run_after is None
    # The attempt keeps its number (the budget ledger is per attempt), and one more is allowed.
    assert job.attempts == 1 and job.max_attempts == 3
    assert outcomes(job) == ["interrupted"]
    assert job.error_details == {"handler_started": False}
    nothing_left_running(acme)

    stopping.reset()
    monkeypatch.setattr(runner, "claim", real_claim)
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and calls == [2]
    assert outcomes(job) == ["interrupted", "completed"]
    nothing_left_running(acme)


def test_a_handler_timeout_shorter_than_the_stop_timeout_still_ends_as_a_timeout(submit, temp_handler, settings):
    settings.PULSE_STOP_TIMEOUT = 30.0

    @temp_handler("test.slow", timeout=1, max_attempts=1)
    def slow(ctx):
        stopping.request_stop()
        time.sleep(10)

    job = submit("test.slow")
    started = time.monotonic()
    run_job(job.public_id)
    assert time.monotonic() - started < 5
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.error_code == "timeout"
    assert outcomes(job) == ["failed"]


def test_a_handler_that_swallows_its_timeout_is_stopped_again_a_second_later(submit, temp_handler):
    """A catch-all in the handler (a library's retry loop, `except BaseException`) took the timeout
    and the handler went on: the job ran to its end long past its timeout and completed. The alarm
    comes again every ALARM_REPEAT_SECONDS while the handler runs past its end."""

    @temp_handler("test.swallows", timeout=1, max_attempts=1)
    def swallows(ctx):
        try:
            time.sleep(10)
        except BaseException:
            pass
        time.sleep(10)

    job = submit("test.swallows")
    started = time.monotonic()
    run_job(job.public_id)
    assert time.monotonic() - started < 5
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "timeout")


@contextmanager
def slow_commit_of_a_log_line(message: str):
    """A log line `message` whose transaction takes 30 s to commit: a deferred trigger of the test's
    sleeps in it (PostgreSQL)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE FUNCTION test_slow_commit() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(30); "
                       "RETURN NULL; END $$ LANGUAGE plpgsql")
        cursor.execute("CREATE CONSTRAINT TRIGGER test_slow_commit AFTER INSERT ON jobs_tasklog DEFERRABLE "
                       f"INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.message = '{message}') "
                       "EXECUTE FUNCTION test_slow_commit()")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_slow_commit ON jobs_tasklog; DROP FUNCTION test_slow_commit()")


@pytest.mark.parametrize("where", ["query", "commit"])
def test_an_interruption_that_lands_in_a_transaction_still_queues_the_job_again(
        submit, temp_handler, settings, acme, where):
    """The stop's alarm came while a transaction waited for PostgreSQL: in a query (the handler's
    own), or in its commit (Pulse's write of a log line). Landing in the commit, the transaction's
    end failed on the busy connection ("can't change 'autocommit' now: connection in transaction
    status ACTIVE"), that error took the interruption's place, and the job failed as `unknown`
    instead of going back to the queue (seen in a cluster stopped while its handler logged a step)."""
    from django.db import connection, transaction

    if not settings.IS_POSTGRES:
        pytest.skip("SQLite runs a query to its end before a signal is handled")
    settings.PULSE_STOP_TIMEOUT = 0.5

    @temp_handler("test.in_transaction", timeout=60, max_attempts=3)
    def in_transaction(ctx):
        stopping.request_stop()
        if where == "query":
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(30)")
        else:
            ctx.log("a step")

    job = submit("test.in_transaction")
    with slow_commit_of_a_log_line("a step"):
        started = time.monotonic()
        run_job(job.public_id)
        assert time.monotonic() - started < 10
    job.refresh_from_db()
    attempt = Attempt.objects.get(job=job, number=1)
    assert (job.status, job.error_code, attempt.outcome) == (Status.QUEUED, "interrupted", "interrupted"), \
        attempt.error_message
    assert "stop timeout" in attempt.error_message
    nothing_left_running(acme)
    with connection.cursor() as cursor:  # nothing of the handler's left waiting in the server
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND query IN ('SELECT pg_sleep(30)', 'COMMIT') "
                       "AND state = 'active'")
        assert cursor.fetchone()[0] == 0


def test_a_timeout_that_lands_in_a_commit_ends_as_a_timeout(submit, temp_handler, settings):
    from django.db import connection

    if not settings.IS_POSTGRES:
        pytest.skip("SQLite runs a query to its end before a signal is handled")

    @temp_handler("test.slow_commit", timeout=1, max_attempts=1)
    def slow_commit(ctx):
        ctx.log("a slow step")

    job = submit("test.slow_commit")
    with slow_commit_of_a_log_line("a slow step"):
        run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "timeout"), job.error_message
    with connection.cursor() as cursor:  # the commit was cancelled in the server, not left sleeping
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND query = 'COMMIT' AND state = 'active'")
        assert cursor.fetchone()[0] == 0
    after = submit("pulse.noop")  # the worker goes on with its next job
    run_job(after.public_id)
    assert Job.objects.get(pk=after.pk).status == Status.COMPLETED


def test_a_handler_that_catches_every_error_around_a_step_the_timeout_landed_in_still_times_out(
        submit, temp_handler, settings):
    """The timeout landed in a log line's COMMIT, whose failure took its place (see above), and the
    handler caught that error as any other and went on: it ran to its end, past its timeout."""
    if not settings.IS_POSTGRES:
        pytest.skip("SQLite runs a query to its end before a signal is handled")

    @temp_handler("test.careless", timeout=1, max_attempts=1)
    def careless(ctx):
        try:
            ctx.log("a slow step")
        except Exception:
            pass
        time.sleep(10)

    job = submit("test.careless")
    with slow_commit_of_a_log_line("a slow step"):
        started = time.monotonic()
        run_job(job.public_id)
        assert time.monotonic() - started < 6
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "timeout"), job.error_message
