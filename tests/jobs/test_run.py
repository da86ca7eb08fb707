"""The worker's path, run in-process: claim, handler, settle, retry, cancel, rescue."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.handlers.registry import find_handler
from jobs.models import Attempt, Job, TaskLog
from jobs.runner import Outcome, rescue_expired, run_job, settle
from jobs.services import job_cancel, job_pause, job_resume, job_retry
from pulse_site.activity import activity_text
from pulse_site.errors import Conflict
from pulse_site.live.models import Event

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


def kinds(job: Job) -> list[str]:
    return list(Event.objects.filter(subject=job.public_id).order_by("id").values_list("kind", flat=True))


def test_a_job_runs_to_completion_with_progress_logs_and_cost(submit, settings):
    settings.PULSE_PROGRESS_INTERVAL = 0
    job = submit("demo.report", {"delay": 0})
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert (job.progress_current, job.progress_total) == (7, 7)
    assert job.cost_actual == 70_000  # seven reported tasks at 0.01, not the 0.12 estimate
    assert job.result == {"title": "Weekly report", "tasks_done": 7}
    stages = set(TaskLog.objects.filter(job=job).exclude(stage="").values_list("stage", flat=True))
    assert stages == {"collect", "analyse", "publish"}
    system = list(TaskLog.objects.filter(job=job, stage="").values_list("message", flat=True))
    assert system[0].startswith("Attempt 1 of 2 started on ")
    assert system[-1].startswith("Completed in ")
    assert kinds(job)[:2] == ["job.created", "job.started"]
    assert kinds(job)[-1] == "job.completed"
    attempt = Attempt.objects.get(job=job)
    assert attempt.outcome == Attempt.Outcome.COMPLETED and attempt.cost == 70_000


def test_a_second_delivery_runs_nothing(submit, temp_handler):
    calls = []

    @temp_handler("test.count")
    def count(ctx):
        calls.append(ctx.job_id)

    job = submit("test.count")
    run_job(job.public_id)
    run_job(job.public_id)
    assert calls == [job.public_id]
    assert Attempt.objects.filter(job=job).count() == 1


def test_concurrent_deliveries_run_the_handler_once(submit, temp_handler, settings):
    if not settings.IS_POSTGRES:
        pytest.skip("row locks between threads need PostgreSQL; SQLite serializes writers anyway")
    calls = []
    barrier = threading.Barrier(4)

    @temp_handler("test.count")
    def count(ctx):
        calls.append(ctx.job_id)

    job = submit("test.count")

    def deliver():
        barrier.wait()
        try:
            run_job(job.public_id)
        finally:
            from django.db import connection

            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [job.public_id]


def test_a_retryable_failure_is_queued_again_with_backoff(submit, time_machine):
    time_machine.move_to("2026-03-01 12:00Z", tick=False)
    job = submit("pulse.fail", {"code": "network_error"})
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.QUEUED
    assert job.error_code == "network_error"
    # Attempt 1 with base 1 s: between 0.5 and 1 s.
    wait = (job.run_after - timezone.now()).total_seconds()
    assert 0.5 <= wait <= 1.0
    run_job(job.public_id)  # delivered too early: nothing happens
    assert Attempt.objects.filter(job=job).count() == 1
    time_machine.move_to("2026-03-01 12:00:02Z", tick=False)
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.attempts == 2 and job.status == Status.QUEUED
    wait = (job.run_after - timezone.now()).total_seconds()
    assert 1.0 <= wait <= 2.0
    time_machine.move_to("2026-03-01 12:00:10Z", tick=False)
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.attempts == 3
    outcomes = list(Attempt.objects.filter(job=job).values_list("outcome", flat=True))
    assert outcomes == ["retrying", "retrying", "failed"]


def test_a_non_retryable_failure_fails_at_once(submit):
    job = submit("pulse.fail", {"code": "validation_error", "message": "bad input"})
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code, job.error_message) == (Status.FAILED, "validation_error", "bad input")
    assert job.error_retryable is False and job.error_recoverable is False
    assert "JobError" in Attempt.objects.get(job=job).traceback


def test_an_unexpected_exception_is_recorded_as_unknown_with_its_traceback(submit, temp_handler):
    @temp_handler("test.crash", max_attempts=1)
    def crash(ctx):
        raise KeyError("missing")

    job = submit("test.crash")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "unknown")
    assert job.error_message == "KeyError: 'missing'"
    assert "raise KeyError" in Attempt.objects.get(job=job).traceback


def test_a_handler_that_overruns_its_timeout_ends_as_timeout(submit, temp_handler):
    import time

    @temp_handler("test.slow", timeout=1, max_attempts=1)
    def slow(ctx):
        while True:
            time.sleep(0.05)

    job = submit("test.slow")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "timeout")


def test_a_handler_in_a_slow_query_at_its_timeout_ends_as_timeout_and_its_query_is_stopped(
        submit, temp_handler, settings):
    """The alarm came while the handler waited for its own query: the connection was left busy
    with it, the settle's first statement failed on it, and the job stayed running (its money
    reserved, its slot taken) until the lease's rescue, while the query ran on in the server."""
    from django.db import connection

    from budgets.models import BudgetPolicy, Usage
    from budgets.services import budget_policy_update

    if not settings.IS_POSTGRES:
        pytest.skip("SQLite runs a query to its end before a signal is handled")

    @temp_handler("test.slow_query", timeout=1, max_attempts=1, cost="0.10")
    def slow_query(ctx):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(30)")

    job = submit("test.slow_query")
    budget_policy_update(team=job.team, changes={"daily_limit": "5.00"}, by=None)
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code, job.cost_actual) == (Status.FAILED, "timeout", 100_000)
    assert Attempt.objects.get(job=job).outcome == Attempt.Outcome.FAILED
    day = Usage.objects.get(team=job.team, scope="", kind="day")
    assert (day.committed, day.reserved, BudgetPolicy.objects.get(team=job.team).running) == (100_000, 0, 0)
    with connection.cursor() as cursor:  # no backend still sleeping in the handler's query
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND query = 'SELECT pg_sleep(30)' "
                       "AND state = 'active'")
        assert cursor.fetchone()[0] == 0
    after = submit("pulse.noop")  # the worker goes on with its next job
    run_job(after.public_id)
    assert Job.objects.get(pk=after.pk).status == Status.COMPLETED


def test_a_handler_that_reports_no_cost_is_charged_its_estimate(submit, temp_handler):
    @temp_handler("test.priced", cost="0.25")
    def priced(ctx):
        return None

    job = submit("test.priced")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.cost_actual == 250_000


def test_cancelling_a_running_job_stops_the_handler_and_ends_cancelled(submit, settings):
    settings.PULSE_CANCEL_POLL_SECONDS = 0.05
    job = submit("pulse.sleep", {"steps": 200, "seconds": 0.05})
    runner = threading.Thread(target=lambda: (run_job(job.public_id), _close()))
    runner.start()
    _wait_for(lambda: Job.objects.get(pk=job.pk).progress_current >= 1)
    job_cancel(job=Job.objects.get(pk=job.pk), by="alice")
    runner.join(timeout=10)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert job.progress_current < 200
    assert Attempt.objects.get(job=job).outcome == Attempt.Outcome.CANCELLED


@pytest.mark.parametrize("grace", [0.3, 0.0])
def test_a_handler_that_ignores_its_cancel_is_stopped_after_the_grace_unless_it_is_zero(submit, temp_handler, settings,
                                                                                       grace):
    """A handler that never looks at ctx.cancelled() (or is stuck in a call) cannot hold a
    cancelled job, its budget reservation and its slot until its timeout: PULSE_CANCEL_GRACE_SECONDS
    after the cancel it is stopped, as a timeout stops it; 0 lets it run to its end."""
    import time

    settings.PULSE_CANCEL_POLL_SECONDS = 0.05
    settings.PULSE_CANCEL_GRACE_SECONDS = grace
    loops = []

    @temp_handler("test.deaf", timeout=60, max_attempts=1)
    def deaf(ctx):
        job_cancel(job=Job.objects.get(public_id=ctx.job_id), by="alice")  # pressed while it runs
        for _ in range(20):  # 1 s, never asking ctx.cancelled()
            try:
                time.sleep(0.05)
                loops.append(1)
            except Exception:  # noqa: BLE001,S110  (a broad except cannot swallow the stop)
                pass
        return {"finished": True}

    job = submit("test.deaf")
    run_job(job.public_id)
    job.refresh_from_db()
    attempt = Attempt.objects.get(job=job)
    assert (job.status, attempt.outcome, job.result, job.error_code) == (
        Status.CANCELLED, Attempt.Outcome.CANCELLED, None, "")
    last_line = TaskLog.objects.filter(job=job, stage="").order_by("id").last().message
    if grace:
        assert len(loops) < 20, "the handler ran to its end"
        assert attempt.error_message == "Stopped 0.3 s after the cancel: the handler had not returned."
        assert "time.sleep" in attempt.traceback  # where it was stuck
        assert last_line.startswith("Cancelled after ") and last_line.endswith(": " + attempt.error_message)
        event = Event.objects.get(subject=job.public_id, kind="job.cancelled")
        assert activity_text(event.kind, event.payload) == "test.deaf cancelled: " + attempt.error_message
    else:
        assert len(loops) == 20 and attempt.error_message == ""
        assert last_line.startswith("Cancelled after ") and last_line.endswith(" ms")


def test_cancelling_a_parent_cancels_its_unfinished_children(submit, temp_handler):
    parent = submit("pulse.noop")
    child = submit("pulse.noop", parent=parent)
    done = submit("pulse.noop", parent=parent)
    Job.objects.filter(pk=done.pk).update(status=Status.COMPLETED)
    job_cancel(job=parent, by="alice")
    child.refresh_from_db()
    done.refresh_from_db()
    assert child.status == Status.CANCELLED and done.status == Status.COMPLETED


def test_a_handler_can_spawn_children_of_the_same_team(submit, temp_handler):
    @temp_handler("test.parent")
    def parent(ctx):
        return {"child": ctx.spawn("pulse.noop", {"n": 1})}

    job = submit("test.parent")
    run_job(job.public_id)
    job.refresh_from_db()
    child = Job.objects.get(public_id=job.result["child"])
    assert (child.parent_id, child.team_id, child.source) == (job.pk, job.team_id, "child")


def test_pause_holds_a_queued_job_and_resume_sends_it_back_through_admission(submit):
    job = submit("pulse.noop")
    job_pause(job=job, by="alice")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.PAUSED and job.hold_reasons[0]["kind"] == "manual"
    job_resume(job=job, by="alice")
    job.refresh_from_db()
    assert job.status == Status.QUEUED  # never straight to running
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED


def test_a_job_held_and_resumed_before_its_run_time_still_waits_for_it(submit):
    """A schedule's run staged for its slot (or a submit with run_after), held and resumed by a
    person before that time, does not run early."""
    at = timezone.now() + timedelta(minutes=1)
    job = submit("pulse.noop", run_after=at)
    job_pause(job=job, by="alice")
    job_resume(job=Job.objects.get(pk=job.pk), by="alice")
    job.refresh_from_db()
    assert (job.status, job.run_after) == (Status.QUEUED, at)
    run_job(job.public_id)  # delivered early (a stray message): back to the backlog, not run
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.QUEUED, 0)


def test_retry_of_a_failed_job_adds_an_attempt_and_keeps_the_history(submit):
    job = submit("pulse.fail", {"code": "parse_error"})
    run_job(job.public_id)
    job_retry(job=Job.objects.get(pk=job.pk), by="alice")
    job.refresh_from_db()
    assert (job.status, job.error_code, job.max_attempts) == (Status.QUEUED, "", 4)
    run_job(job.public_id)
    assert list(Attempt.objects.filter(job=job).values_list("number", "outcome")) == [(1, "failed"), (2, "failed")]


def test_only_failed_or_cancelled_jobs_can_be_retried(submit):
    job = submit("pulse.noop")
    with pytest.raises(Conflict):
        job_retry(job=job, by="alice")


def test_settling_twice_changes_nothing(submit):
    job = submit("pulse.noop")
    from jobs.runner import claim

    claimed, _ = claim(job.public_id)
    first = settle(job_pk=claimed.pk, attempt=1, outcome=Outcome(ok=True, result={"n": 1}))
    second = settle(job_pk=claimed.pk, attempt=1, outcome=Outcome(ok=False, code="unknown", message="late"))
    job.refresh_from_db()
    assert first is not None and second is None
    assert (job.status, job.result) == (Status.COMPLETED, {"n": 1})


def test_an_expired_lease_is_rescued_and_retried_then_failed_after_max_attempts(submit, temp_handler):
    @temp_handler("test.killer", max_attempts=2)
    def killer(ctx):
        return None

    from jobs.runner import claim

    job = submit("test.killer")
    for expected_status in (Status.QUEUED, Status.FAILED):
        Job.objects.filter(pk=job.pk).update(run_after=None)
        assert claim(job.public_id) is not None
        Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        assert rescue_expired() == 1
        job.refresh_from_db()
        assert job.status == expected_status
    assert job.error_code == "worker_lost"
    assert list(Attempt.objects.filter(job=job).values_list("outcome", flat=True)) == ["worker_lost", "worker_lost"]
    assert rescue_expired() == 0


def _close():
    from django.db import connection

    connection.close()


def _wait_for(condition, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def test_a_job_given_a_later_start_waits_from_then_not_from_its_submit(acme, submit, time_machine):
    """A schedule's run written a minute ahead of its slot, or a start asked for later, did not
    'wait 60 s': its wait (the job page, the handler timings) counts from when it was due."""
    from datetime import UTC, datetime

    from jobs.selectors import handler_timings
    from jobs.services import job_start
    from jobs.views import JobRow

    t0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    time_machine.move_to(t0, tick=False)
    later = submit("pulse.noop", run_after=t0 + timedelta(seconds=60))
    now = submit("pulse.noop")
    expedited = submit("pulse.noop", run_after=t0 + timedelta(hours=1))
    time_machine.move_to(t0 + timedelta(seconds=20), tick=False)
    job_start(job=expedited, by="alice")
    time_machine.move_to(t0 + timedelta(seconds=62), tick=False)
    for job in (later, now, expedited):
        run_job(job.public_id)
    waits = {job.public_id: JobRow(Job.objects.get(pk=job.pk)).wait_ms for job in (later, now, expedited)}
    assert waits == {later.public_id: 2_000, now.public_id: 62_000, expedited.public_id: 42_000}
    [timing] = handler_timings(team=acme, now=t0 + timedelta(seconds=63))
    assert (timing.jobs, timing.wait_median_ms, timing.wait_p95_ms) == (3, 42_000, 62_000)


def test_a_retried_jobs_run_time_is_its_last_attempts_not_the_span_from_its_first_start(acme, submit, time_machine):
    """Three quick tries, the last 31 s after the first: the handler's run time (overview, handler
    pages, API) is the last try's, not the retries' waits."""
    from datetime import UTC, datetime

    from jobs.selectors import handler_timings

    t0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    time_machine.move_to(t0, tick=False)
    job = submit("pulse.fail", {"code": "network_error"})
    run_job(job.public_id)
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED  # a retry is due later
    for at in (30, 31):  # the retries, each at once once its time has come
        time_machine.move_to(t0 + timedelta(seconds=at), tick=False)
        Job.objects.filter(pk=job.pk).update(run_after=None)
        run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.FAILED, 3)
    [timing] = handler_timings(team=acme, now=t0 + timedelta(seconds=32))
    assert (timing.jobs, timing.run_median_ms, timing.wait_median_ms) == (1, 0, 0)


def test_a_handler_may_report_a_cost_in_decimals_own_notation(submit, temp_handler):
    """People write amounts as plain digits (the API refuses "1E-3"), but a handler's code may pass
    Decimal's own notation (str(Decimal(1).scaleb(3)) is "1E+3"): it counts."""
    from decimal import Decimal

    @temp_handler("test.tiny", cost="0")
    def tiny(ctx):
        ctx.report_cost(str(Decimal(1).scaleb(-3)))
        ctx.report_cost(str(Decimal(2).scaleb(-6)))
        ctx.report_cost(str(Decimal(1).scaleb(3)))

    job = submit("test.tiny")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.cost_actual) == (Status.COMPLETED, 1_000_001_002)


def test_costs_reported_past_what_an_attempt_can_be_charged_fail_the_job_not_leave_it_running(submit, temp_handler):
    """Ten reports of the largest amount overflowed the ledger's column at the settle: the job
    stayed running until its lease ran out, then ran again."""
    @temp_handler("test.costly", cost="0", max_attempts=1)
    def costly(ctx):
        for _ in range(10):
            ctx.report_cost("1000000000000")

    job = submit("test.costly")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "add up to more than 1000000000000" in job.error_message


@pytest.mark.parametrize("value", [{"ratio": float("nan")}, [float("inf")], "a\x00b", {"details": {"k": "\x00"}}])
def test_a_result_no_json_column_can_hold_is_stored_as_its_repr_and_the_job_completes(submit, temp_handler, value):
    """json.dumps writes NaN and Infinity, and PostgreSQL's jsonb refuses them and a NUL character
    (SQLite's JSON_VALID check refuses the first two): the settle failed and the job stayed running."""
    @temp_handler("test.odd_result")
    def odd(ctx):
        return value

    job = submit("test.odd_result")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.result) == (Status.COMPLETED, repr(value))


def test_error_details_no_json_column_can_hold_are_stored_as_their_repr(submit, temp_handler):
    from jobs.handlers import JobError

    @temp_handler("test.odd_details", max_attempts=1)
    def odd(ctx):
        raise JobError("parse_error", "bad row", details={"score": float("nan")})

    job = submit("test.odd_details")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code, job.error_details) == (Status.FAILED, "parse_error", "{'score': nan}")


def test_a_log_line_with_values_json_cannot_hold_is_written_and_the_job_carries_on(submit, temp_handler, settings):
    """Metadata the JSON column refuses (a Decimal, NaN) or a NUL character in the text failed the
    ctx.log() call, so one log line failed the whole job."""
    from decimal import Decimal

    settings.PULSE_PROGRESS_INTERVAL = 0

    @temp_handler("test.odd_log")
    def odd(ctx):
        ctx.log("row\x00one", amount=Decimal("1.5"), ratio=float("nan"), rows=3)
        ctx.progress(1, 1, "page\x00one")
        return "done"

    job = submit("test.odd_log")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.result, job.progress_message) == (Status.COMPLETED, "done", "page\\x00one")
    line = TaskLog.objects.get(job=job, message__startswith="row")
    assert (line.message, line.metadata) == ("row\\x00one", {"amount": "Decimal('1.5')", "ratio": "nan", "rows": 3})


def test_an_error_message_with_a_nul_character_fails_the_job_instead_of_leaving_it_running(submit, temp_handler):
    """PostgreSQL's text columns refuse NUL: the settle writing the message failed and the job
    stayed running until its lease's rescue re-ran it."""
    @temp_handler("test.nul_error", max_attempts=1)
    def nul(ctx):
        raise ValueError("bad byte \x00 in row")

    job = submit("test.nul_error")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code, job.error_message) == (Status.FAILED, "unknown", "ValueError: bad byte \\x00 in row")
    assert Attempt.objects.get(job=job).error_message == "ValueError: bad byte \\x00 in row"


def test_a_reported_cost_with_trailing_zeros_past_six_places_counts(submit, temp_handler):
    """Decimal arithmetic keeps trailing zeros (Decimal("0.0000004") * 1000 is 0.0004000, seven
    places): the amount is a whole number of micro-units, but it was refused as finer than one and
    the job failed after doing its work."""
    from decimal import Decimal

    @temp_handler("test.per_token", cost=lambda payload: Decimal("0.0000005") * 2)
    def per_token(ctx):
        ctx.report_cost(Decimal("0.0000004") * 1000)

    job = submit("test.per_token")
    assert job.cost_estimate == 1
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.cost_actual) == (Status.COMPLETED, 400)


def test_a_cost_finer_than_a_micro_unit_is_rounded_up_not_refused_after_the_work(submit, temp_handler):
    """A price per token times the tokens (0.0000001 x 3) failed the job after its work was done."""
    from decimal import Decimal

    @temp_handler("test.per_token_fine", cost=lambda payload: Decimal("0.0000001") * 3)
    def per_token_fine(ctx):
        ctx.report_cost(Decimal("0.0000001") * 3)
        ctx.report_cost(Decimal("0.0000015"))

    job = submit("test.per_token_fine")
    assert job.cost_estimate == 1  # 0.0000003 rounded up to a millionth
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.cost_actual) == (Status.COMPLETED, 1 + 2)


def test_a_job_error_with_a_code_outside_the_list_keeps_the_code_it_was_given(submit, temp_handler):
    """JobError("rate_limited", …) became unknown and the code the handler gave appeared nowhere."""
    from jobs.error_codes import JobError

    @temp_handler("test.own_code", max_attempts=1)
    def own_code(ctx):
        raise JobError("rate_limited", "the provider said slow down", details={"after": 30})

    job = submit("test.own_code")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "unknown")
    assert job.error_details == {"after": 30, "code_given": "rate_limited"}


@pytest.mark.parametrize("code", ["worker_lost", "interrupted", "budget_exceeded"])
def test_a_handler_cannot_end_its_attempt_with_one_of_pulses_own_codes(submit, temp_handler, code):
    """worker_lost, interrupted and budget_exceeded say what Pulse saw (a lost lease, a stopped
    worker, a refusal at admission): a handler's JobError with one is its own error, `unknown`."""
    from jobs.error_codes import JobError

    @temp_handler("test.pulse_code", max_attempts=1)
    def pulse_code(ctx):
        raise JobError(code, "pretending")

    job = submit("test.pulse_code")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code, job.error_details) == (Status.FAILED, "unknown", {"code_given": code})


def test_a_rescued_attempt_says_how_long_it_ran_not_0_ms(submit, temp_handler):
    """A cluster killed with SIGKILL 30 s into a job: the rescue's log line said "Failed after 0 ms
    with worker_lost", though the attempt ran 30 s (its own row said so)."""
    @temp_handler("test.lost", max_attempts=2)
    def lost(ctx):
        return None

    from jobs.runner import claim

    job = submit("test.lost")
    assert claim(job.public_id) is not None
    Attempt.objects.filter(job=job, number=1).update(started_at=timezone.now() - timedelta(seconds=30))
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert rescue_expired() == 1
    line = TaskLog.objects.filter(job=job, stage="", message__contains="worker_lost").get().message
    ran_ms = int(line.removeprefix("Failed after ").split(" ms", 1)[0])
    assert 30_000 <= ran_ms < 40_000, line


def test_a_worker_without_the_handler_leaves_the_job_to_one_that_has_it_then_fails_it_saying_why(
        submit, temp_handler, caplog, time_machine):
    """A rolling deploy of a new handler, machine by machine (web, worker and ticker together): the
    jobs the machines not yet deployed took failed for good ('not registered on this worker', 13 of
    20 here, their workers chaining them from the backlog) and those workers' logs said nothing.
    A worker without the handler now sends the job back to wait a few seconds for a worker that
    has it, saying so on the job and in its log; one no worker took for 10 minutes (the handler is
    nowhere: removed from the workers before the web processes) fails, naming the worker."""
    @temp_handler("test.new_here", max_attempts=2)
    def new_here(ctx):
        return {"ran": True}

    from jobs.handlers.registry import restore, unregister
    from jobs.runner import HANDLER_MISSING_PATIENCE, claim, worker_name

    t0 = timezone.now()
    time_machine.move_to(t0, tick=False)
    job = submit("test.new_here")
    deployed = find_handler("test.new_here")
    unregister("test.new_here")  # this worker runs the release before it
    with caplog.at_level("WARNING", logger="pulse.jobs"):
        assert claim(job.public_id) is None
    job.refresh_from_db()
    assert (job.status, job.attempts, job.dispatched_at) == (Status.QUEUED, 0, None)
    reason = job.hold_reasons[0]
    assert reason["kind"] == "handler_missing" and worker_name() in reason["message"]
    assert "PULSE_HANDLER_MODULES" in reason["message"] and "jobs.handlers.builtin" in reason["message"]
    assert job.run_after > t0  # not handed straight back to the same worker
    logged = [r.getMessage() for r in caplog.records if r.name == "pulse.jobs"]
    assert any(job.public_id in line and "test.new_here" in line for line in logged), logged

    time_machine.move_to(t0 + timedelta(minutes=5), tick=False)  # still within the patience
    assert claim(job.public_id) is None
    job.refresh_from_db()
    assert job.status == Status.QUEUED and job.hold_reasons[0]["since"] == reason["since"]

    restore(deployed)  # a deployed worker takes it
    Job.objects.filter(pk=job.pk).update(run_after=None)
    assert claim(job.public_id) is not None
    job.refresh_from_db()
    assert (job.status, job.hold_reasons) == (Status.RUNNING, [])

    second = submit("test.new_here")
    unregister("test.new_here")
    assert claim(second.public_id) is None
    time_machine.move_to(t0 + timedelta(minutes=5) + HANDLER_MISSING_PATIENCE, tick=False)
    assert claim(second.public_id) is None
    second.refresh_from_db()
    assert (second.status, second.error_code) == (Status.FAILED, "validation_error")
    assert worker_name() in second.error_message and "PULSE_HANDLER_MODULES" in second.error_message


class _Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no words for this")


def test_an_exception_whose_str_raises_fails_the_job_instead_of_leaving_it_running(submit, temp_handler):
    """Writing the message called str() on the exception outside any guard: run_job raised, the
    job stayed running until its lease ran out and then read `worker_lost`, run again."""
    @temp_handler("test.unprintable", max_attempts=1)
    def unprintable(ctx):
        raise _Unprintable()

    job = submit("test.unprintable")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "unknown")
    assert job.error_message == "_Unprintable: (its str() raised RuntimeError)"
    assert "raise _Unprintable()" in Attempt.objects.get(job=job).traceback


@pytest.mark.parametrize(("raised", "message"), [
    (SystemExit(3), "SystemExit: 3"),
    (KeyboardInterrupt(), "KeyboardInterrupt"),
])
def test_a_handler_raising_system_exit_or_keyboard_interrupt_fails_its_attempt_not_its_worker(
        submit, temp_handler, raised, message):
    """They went past `except Exception` to django-q2, which let them end the worker process: the
    job stayed running until its lease ran out, read `worker_lost` and ran again."""
    @temp_handler("test.exits", max_attempts=1)
    def exits(ctx):
        raise raised

    job = submit("test.exits")
    run_job(job.public_id)  # returns: the worker carries on
    job.refresh_from_db()
    assert (job.status, job.error_code) == (Status.FAILED, "unknown")
    assert job.error_message == (f"{message} (raised by the handler: it ends the attempt, not the worker; "
                                 "raise JobError to fail the job)")
    assert Attempt.objects.get(job=job).outcome == Attempt.Outcome.FAILED


def test_an_enormous_error_message_is_cut_everywhere_it_is_written(submit, temp_handler):
    """The job's and attempt's copies were cut at 10,000 characters, but the settle's log line
    (shown on the job's page and sent to every browser as an event) carried all 5 MB."""
    @temp_handler("test.verbose", max_attempts=1)
    def verbose(ctx):
        raise ValueError("x" * 5_000_000)

    job = submit("test.verbose")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.FAILED and len(job.error_message) == 10_000
    line = TaskLog.objects.filter(job=job, level="error").get()
    assert line.message.startswith("Failed after ") and len(line.message) < 10_200


def test_a_lone_surrogate_in_a_log_line_progress_error_or_result_is_written_escaped(submit, temp_handler, settings):
    """Text decoded with errors="surrogateescape" (a file name, a subprocess's output) holds lone
    surrogates, which no database's UTF-8 takes: ctx.log raised UnicodeEncodeError and failed
    the job, and in an error message the settle failed and left the job running."""
    settings.PULSE_PROGRESS_INTERVAL = 0
    name = b"report-\xff.csv".decode("utf-8", "surrogateescape")

    @temp_handler("test.surrogates", max_attempts=1)
    def surrogates(ctx):
        ctx.log(f"reading {name}", stage=name, task=name, file=name)
        ctx.progress(1, 2, name)
        return {"file": name}

    @temp_handler("test.surrogate_error", max_attempts=1)
    def surrogate_error(ctx):
        raise FileNotFoundError(name)

    job = submit("test.surrogates")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.progress_message) == (Status.COMPLETED, "report-\\udcff.csv")
    assert job.result == repr({"file": name})
    line = TaskLog.objects.get(job=job, message__startswith="reading")
    assert (line.message, line.stage, line.task) == ("reading report-\\udcff.csv", "report-\\udcff.csv",
                                                     "report-\\udcff.csv")
    assert line.metadata == {"file": repr(name)}
    failed = submit("test.surrogate_error")
    run_job(failed.public_id)
    failed.refresh_from_db()
    assert (failed.status, failed.error_message) == (Status.FAILED, "FileNotFoundError: report-\\udcff.csv")


@pytest.mark.parametrize(("current", "total", "reason"), [
    ("3", 10, "ctx.progress: current must be a number, not '3'"),
    (None, None, "ctx.progress: current must be a number, not None"),
    (float("nan"), 10, "ctx.progress: current must be a finite number, not nan"),
    (1, float("inf"), "ctx.progress: total must be a finite number, not inf"),
    (-5, 10, "ctx.progress: current must be 0 or more, not -5"),
    (1, -4, "ctx.progress: total must be 0 or more, not -4"),
    (50, 10, "ctx.progress: current (50) is past total (10)"),
    (10**30, None, "ctx.progress: current must be at most 9223372036854775807, not 1000000000000000000000000000000"),
])
def test_progress_out_of_range_or_not_a_number_fails_the_job_saying_which_value(submit, temp_handler, current, total,
                                                                                 reason):
    """A string or None read as int() ('invalid literal for int() with base 10'), NaN and infinity as
    'cannot convert float NaN to integer', a number past the column as a database error; a negative
    or one past its total was written and drawn."""
    @temp_handler("test.bad_progress", max_attempts=1)
    def bad_progress(ctx):
        ctx.progress(current, total, "step")
        return "done"

    job = submit("test.bad_progress")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_code, job.error_message) == (Status.FAILED, "unknown", f"ValueError: {reason}")
    assert (job.progress_current, job.progress_total) == (0, None)


def test_progress_takes_whole_numbers_of_any_numeric_type(submit, temp_handler, settings):
    from decimal import Decimal

    settings.PULSE_PROGRESS_INTERVAL = 0

    @temp_handler("test.numeric_progress", max_attempts=1)
    def numeric_progress(ctx):
        ctx.progress(2.7, Decimal("10"), "step")
        return "done"

    job = submit("test.numeric_progress")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.progress_current, job.progress_total) == (Status.COMPLETED, 2, 10)


def test_a_result_past_the_size_limit_is_not_kept_and_the_job_says_so(submit, temp_handler, settings):
    """A handler returning 50 MB had all of it written to the job's row, sent with its API answer
    and drawn on its page (PostgreSQL's jsonb refuses past 255 MB: the settle failed then, and the
    job stayed running)."""
    settings.PULSE_MAX_RESULT_BYTES = 1024

    @temp_handler("test.big_result")
    def big_result(ctx):
        return {"rows": "y" * 2000}

    job = submit("test.big_result")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    assert job.result == ("The result was 2012 bytes as JSON: at most 1024 are kept (PULSE_MAX_RESULT_BYTES). "
                          "Return where the output is (a path, a URL) instead.")
    line = TaskLog.objects.filter(job=job, level="warning").get()
    assert line.message == job.result


def test_a_thread_left_running_cannot_write_to_the_job_after_its_attempt_ended(submit, temp_handler):
    """Its lines were written under the finished attempt, after "Completed in …" (and after a
    retry's next attempt had begun, mixed into it)."""
    go_on = threading.Event()
    refused: list[str] = []

    @temp_handler("test.leaves_a_thread")
    def leaves_a_thread(ctx):
        def later():
            go_on.wait(5)
            for call in (lambda: ctx.log("late"), lambda: ctx.progress(1, 2), lambda: ctx.report_cost("1")):
                try:
                    call()
                except RuntimeError as exc:
                    refused.append(str(exc))

        threading.Thread(target=later).start()
        return "returned"

    job = submit("test.leaves_a_thread")
    run_job(job.public_id)
    lines = TaskLog.objects.filter(job=job).count()
    go_on.set()
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(5)
    assert refused == [
        f"ctx.{call} of {job.public_id}: attempt 1 has ended, so it takes nothing more (a thread or process the "
        "handler left running? wait for it before returning)" for call in ("log", "progress", "report_cost")]
    assert TaskLog.objects.filter(job=job).count() == lines


def test_a_forked_child_that_returns_into_the_worker_ends_there_and_settles_nothing(submit, temp_handler):
    """A child of the handler that returned (no os._exit) ran on in the worker's code: it settled
    the job as well and went on as a second worker on the parent's database connection."""
    import os

    parent = os.getpid()

    @temp_handler("test.forks")
    def forks(ctx):
        return {"child": os.fork() == 0}

    job = submit("test.forks")
    run_job(job.public_id)
    if os.getpid() != parent:
        os._exit(7)  # the child came all the way back here: the defect
    _, status = os.wait()
    job.refresh_from_db()
    assert os.waitstatus_to_exitcode(status) == 70
    assert (job.status, job.result) == (Status.COMPLETED, {"child": False})
    assert Attempt.objects.filter(job=job).count() == 1


@pytest.mark.parametrize(("amount", "reason"), [
    ("lots", "'lots' is not an amount."),
    (0.5, "Give the amount as a string (e.g. \"0.10\"), not a float."),
    ("-1", "The amount cannot be negative."),
])
def test_a_cost_reported_that_is_no_amount_fails_the_job_naming_report_cost(submit, temp_handler, amount, reason):
    """The job read "ValidationError: cost: …", which a handler's author could take for its `cost`
    declaration or its estimator."""
    @temp_handler("test.bad_report", cost="0.01", max_attempts=1)
    def bad_report(ctx):
        ctx.report_cost(amount)

    job = submit("test.bad_report")
    run_job(job.public_id)
    job.refresh_from_db()
    assert (job.status, job.error_message) == (Status.FAILED, f"ValidationError: ctx.report_cost: {reason}")
    assert job.cost_actual == 10_000  # the estimate, as for any failed attempt that reported nothing


def test_a_stage_named_by_a_number_groups_its_lines_as_ctx_log_would_name_it(submit, temp_handler):
    """ctx.log(stage=2024) took it as "2024", but `with ctx.stage(2024)` failed the job with
    "AttributeError: 'int' object has no attribute 'replace'"."""
    @temp_handler("test.numbered_stage", max_attempts=1)
    def numbered_stage(ctx):
        with ctx.stage(2024, task=7):
            ctx.log("year")
        return "done"

    job = submit("test.numbered_stage")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED
    line = TaskLog.objects.get(job=job, message="year")
    assert (line.stage, line.task) == ("2024", "7")
