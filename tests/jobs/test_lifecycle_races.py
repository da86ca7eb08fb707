"""A job's way under concurrency and user actions, each race played out with real connections:
a batch's finished member keeps its lease while a slow one runs, a child spawned after its
parent's cancel is cancelled, a held job is not hidden behind jobs nothing but a limit change
frees, a daemon keeps its slot through the budget's repair, a job deleted meanwhile is refused
(not a 500), and a run deleted before the ticker saw it end keeps its outcome."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from budgets.models import BudgetPolicy, Ledger
from budgets.services import budget_policy_update, budget_repair
from jobs import bulk, runner
from jobs.models import Attempt, Job
from jobs.runner import Outcome, claim, rescue_expired, run_job, settle
from jobs.selectors import JobFilter
from jobs.services import RELEASE_BATCH, job_cancel, job_delete, job_release_due, job_release_held
from pulse_site.errors import Conflict
from schedules.models import Execution
from schedules.selectors import executions_list
from schedules.services import executions_follow, schedule_create, schedule_trigger

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def set_policy():
    def _set(team, **changes):
        return budget_policy_update(team=team, changes=changes, by=None)

    return _set

def test_a_finished_batch_member_is_not_rescued_while_a_later_member_runs(settings, monkeypatch, submit, temp_handler):
    settings.PULSE_DISPATCH_CAPACITY = 1
    settings.PULSE_CHAIN_SECONDS = 30
    settings.PULSE_CHAIN_BATCH = 3
    settings.PULSE_LEASE_SECONDS = 3
    monkeypatch.setattr(runner, "_run_ms", {})
    calls: list[str] = []

    @temp_handler("test.mostly_fast", timeout=60, max_attempts=3)
    def mostly_fast(ctx):
        calls.append(ctx.job_id)
        time.sleep(ctx.payload.get("sleep", 0))

    jobs = [submit("test.mostly_fast", {}), submit("test.mostly_fast", {}),
            submit("test.mostly_fast", {"sleep": 6}), submit("test.mostly_fast", {})]
    stop = threading.Event()

    def ticker():  # the ticker's rescue step, as in production, every half second
        try:
            while not stop.is_set():
                rescue_expired()
                stop.wait(0.5)
        finally:
            connections.close_all()

    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        run_job(jobs[0].public_id)
    finally:
        stop.set()
        thread.join()
    first_of_batch = Job.objects.get(pk=jobs[1].pk)
    outcomes = list(Attempt.objects.filter(job=first_of_batch).order_by("number").values_list("outcome", flat=True))
    assert calls.count(jobs[1].public_id) == 1, calls
    assert outcomes == [Attempt.Outcome.COMPLETED], outcomes


def test_a_parent_cancelled_while_it_runs_spawns_no_more_children(submit, temp_handler):
    """The handler has not noticed the cancel yet (its heartbeat polls every second, the grace
    is 30 s) and spawns its next piece of work: none is made, the handler is stopped there."""
    spawned: list[str] = []

    @temp_handler("test.parent", timeout=30)
    def parent(ctx):
        spawned.append(ctx.spawn("pulse.noop", {}))  # before the cancel: made, and cancelled with it

        def user_cancels():  # the user presses Cancel on the running parent (own connection)
            try:
                job_cancel(job=Job.objects.get(public_id=ctx.job_id), by="alice")
            finally:
                connections.close_all()

        t = threading.Thread(target=user_cancels)
        t.start()
        t.join()
        spawned.append(ctx.spawn("pulse.noop", {}))
        spawned.append("not reached")

    job = submit("test.parent")
    run_job(job.public_id)
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert len(spawned) == 1
    assert list(Job.objects.filter(parent=job).values_list("public_id", "status")) == [
        (spawned[0], Job.Status.CANCELLED)]
    assert Attempt.objects.get(job=job).error_message == (
        "Cancelled before it spawned its next job: no new work starts after a cancel.")

def test_a_job_held_for_a_slot_is_released_when_the_slot_frees(submit, set_policy, acme, temp_handler):
    @temp_handler("test.priced", cost=lambda payload: payload["cost"], timeout=30)
    def priced(ctx):
        return None

    big = [submit("test.priced", {"cost": "5.00"}) for _ in range(RELEASE_BATCH)]
    set_policy(acme, daily_limit="4.00", max_concurrent=1)  # lowered: the big ones can't run until raised
    for job in big:
        claim(job.public_id)
    assert Job.objects.filter(pk__in=[j.pk for j in big], status=Job.Status.PAUSED).count() == RELEASE_BATCH

    running = submit("test.priced", {"cost": "0.10"})
    assert claim(running.public_id) is not None  # takes the one slot
    small = submit("test.priced", {"cost": "0.10"})
    claim(small.public_id)
    small.refresh_from_db()
    assert small.status == Job.Status.PAUSED and small.hold_reasons[0]["kind"] == "concurrency"

    running.refresh_from_db()
    settle(job_pk=running.pk, attempt=running.attempts, outcome=Outcome(ok=True))  # the slot is free
    job_release_held(team_id=acme.pk)
    job_release_due()  # and the ticker's pass, as often as you like
    job_release_due()
    small.refresh_from_db()
    assert small.status != Job.Status.PAUSED, f"still held: {small.hold_reasons}"


def test_a_daemon_running_for_three_hours_still_holds_its_slot(submit, set_policy, acme, temp_handler):
    @temp_handler("test.forever", daemon=True, cost="0.01")
    def forever(ctx):
        while not ctx.sleep(0.1):
            pass

    set_policy(acme, max_concurrent=1)
    daemon = submit("test.forever")
    assert claim(daemon.public_id) is not None  # running, holding the team's one slot
    assert budget_repair(team_id=acme.pk) == []
    # Three hours later (the daemon's admission is that old; it still runs and renews its lease):
    Ledger.objects.filter(job_id=daemon.public_id).update(at=daemon.created_at - timedelta(hours=3))
    drifts = budget_repair(team_id=acme.pk)
    assert drifts == [], drifts
    assert BudgetPolicy.objects.get(team=acme).running == 1
    other = submit("pulse.noop")
    claim(other.public_id)
    other.refresh_from_db()
    assert other.status == Job.Status.PAUSED, "a second job started past max_concurrent=1"


def test_bulk_delete_all_matching_survives_a_job_deleted_meanwhile(submit, acme, monkeypatch):
    jobs = [submit("pulse.noop") for _ in range(3)]
    for job in jobs:
        run_job(job.public_id)
    real_delete = bulk.BULK_SERVICES["delete"]
    first = True

    def delete_and_meanwhile(job, by):
        nonlocal first
        if first:
            first = False

            def other_user():  # another session deletes the oldest job of this batch meanwhile
                try:
                    Job.objects.filter(pk=jobs[0].pk).delete()
                finally:
                    connections.close_all()

            t = threading.Thread(target=other_user)
            t.start()
            t.join()
        return real_delete(job=job, by=by)

    monkeypatch.setitem(bulk.BULK_SERVICES, "delete", delete_and_meanwhile)
    outcome = bulk.jobs_bulk_matching(team=acme, action="delete", filters=JobFilter(), cursor=None, by="alice")
    assert sorted(outcome.done + [i for i, _ in outcome.refused]) == sorted(j.public_id for j in jobs)


def test_a_finished_run_says_how_it_ended_after_its_job_is_deleted(acme):
    """Jobs are kept 30 days, runs 90 (and a person deletes finished jobs): the run's history
    said "error" for every run whose job was gone."""
    schedule = schedule_create(team=acme, name="nightly", handler="pulse.noop", cron="0 3 * * *")
    execution = schedule_trigger(schedule=schedule, by="alice")
    run_job(execution.job.public_id)
    executions_follow()
    job_delete(job=Job.objects.get(pk=execution.job.pk), by="alice")
    execution = Execution.objects.get(pk=execution.pk)
    assert (execution.status, execution.finished_at is not None) == ("completed", True)
    assert [e.public_id for e in executions_list(schedule=schedule, status="completed")[0]] == [execution.public_id]


def test_a_run_whose_job_is_deleted_before_the_follow_up_saw_it_end_is_finished_saying_so(acme):
    schedule = schedule_create(team=acme, name="nightly", handler="pulse.noop", cron="0 3 * * *")
    execution = schedule_trigger(schedule=schedule, by="alice")
    run_job(execution.job.public_id)
    job_delete(job=Job.objects.get(pk=execution.job.pk), by="alice")  # at once, before a tick
    executions_follow()
    assert Execution.objects.get(pk=execution.pk).finished_at is None  # within the grace: not yet
    Execution.objects.filter(pk=execution.pk).update(created_at=execution.created_at - timedelta(minutes=2))
    executions_follow()
    execution = Execution.objects.get(pk=execution.pk)
    assert execution.finished_at is not None and execution.status == "error"
    assert execution.reason == "Its job was deleted before its end was recorded."


def _lock_waiters() -> int:
    """How many other connections to this database wait for a lock now."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0]


def _until(condition, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_cancelling_a_parent_while_its_child_settles_is_no_deadlock(submit, temp_handler):
    """A parent waiting for its retry is cancelled while its running child (same handler, so the
    same hourly stats row) settles: the cancel took the parent, then the stats row, then the child;
    the settle the child, then the stats row. PostgreSQL broke the cycle by failing one of them."""
    from django.db import connection, transaction

    from jobs.models import JobStat
    from jobs.stats import stat_bump

    if connection.vendor != "postgresql":
        pytest.skip("row locks and deadlock detection are PostgreSQL's")

    @temp_handler("test.crawl", timeout=30)
    def crawl(ctx):
        return None

    parent, child = submit("test.crawl"), submit("test.crawl")
    Job.objects.filter(pk=child.pk).update(parent=parent)
    assert claim(child.public_id) is not None  # the child runs; the parent waits in the queue
    stat_bump(child, "completed", run_ms=0)  # this hour's stats row exists, as on any busy team
    row = JobStat.objects.get(team_id=child.team_id, handler="test.crawl")
    holding, release = threading.Event(), threading.Event()
    failures: dict[str, BaseException] = {}

    def in_thread(name: str, work) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                failures[name] = exc
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def hold_the_stats_row() -> None:  # a third worker settling a job of the same handler and hour
        with transaction.atomic():
            JobStat.objects.select_for_update().get(pk=row.pk)
            holding.set()
            release.wait(10)

    threads = [in_thread("holder", hold_the_stats_row)]
    holding.wait(10)
    threads.append(in_thread("cancel", lambda: job_cancel(job=Job.objects.get(pk=parent.pk), by="alice")))
    _until(lambda: _lock_waiters() == 1, "the cancel waits")
    threads.append(in_thread("settle", lambda: settle(job_pk=child.pk, attempt=1, outcome=Outcome(ok=True))))
    _until(lambda: _lock_waiters() == 2, "the settle waits too")
    release.set()
    for thread in threads:
        thread.join(30)
    assert failures == {}
    statuses = dict(Job.objects.filter(pk__in=[parent.pk, child.pk]).values_list("pk", "status"))
    assert statuses == {parent.pk: Job.Status.CANCELLED, child.pk: Job.Status.CANCELLED}


@pytest.mark.parametrize("pass_", ["release", "rehold"])
def test_a_person_s_hold_made_while_a_release_pass_looks_at_the_job_is_kept(submit, set_policy, acme, temp_handler,
                                                                          monkeypatch, pass_):
    """The pass reads the held jobs, then decides on each: a job another pass released meanwhile
    and a person then held (their hold waits for them) was sent back to the queue, or had its
    reasons overwritten with the budget's (and then released by the next pass)."""
    from jobs import services
    from jobs.services import job_pause

    @temp_handler("test.priced", cost=lambda payload: payload["cost"], timeout=30)
    def priced(ctx):
        return None

    set_policy(acme, daily_limit="1.00")
    assert claim(submit("test.priced", {"cost": "0.80"}).public_id) is not None
    held = submit("test.priced", {"cost": "0.50"})
    claim(held.public_id)
    assert Job.objects.get(pk=held.pk).status == Job.Status.PAUSED
    real_check = services.budget_hold_check

    def check_while_a_person_acts(**kwargs):
        def person():  # another ticker's pass releases the job, and a person holds it (own connection)
            try:
                released.append(services._release(Job.objects.get(pk=held.pk), set()))
                job_pause(job=Job.objects.get(pk=held.pk), by="alice")
            finally:
                connections.close_all()

        thread = threading.Thread(target=person)
        thread.start()
        thread.join()
        return real_check(**kwargs)

    released: list[int] = []

    monkeypatch.setattr(services, "budget_hold_check", check_while_a_person_acts)
    # Raised: the pass would release it; lowered under its estimate: it would rewrite its reasons.
    set_policy(acme, daily_limit="5.00" if pass_ == "release" else "0.40")
    job = Job.objects.get(pk=held.pk)
    assert released == [1]  # the other pass did release it, and the person's pause followed
    assert (job.status, [r["kind"] for r in job.hold_reasons]) == (Job.Status.PAUSED, ["manual"])


def _cancel_meanwhile(job: Job):
    """A person's cancel, from a thread of its own: refused (already finished) is an answer too."""
    def cancel() -> None:
        try:
            job_cancel(job=Job.objects.get(pk=job.pk), by="alice")
        except Conflict:
            pass

    return cancel


@pytest.mark.parametrize("race", ["claim", "settle_into_retry", "rescue"])
@pytest.mark.parametrize("round_", range(3))
def test_a_cancel_racing_the_worker_ends_the_job_cancelled_with_its_money_and_slot_released(
        submit, set_policy, acme, temp_handler, race, round_):
    """The cancel and the worker's step released together (one connection each): whichever takes
    the job's row first, the job ends cancelled and never runs again, and nothing stays reserved
    or counted running: every reservation has its release and its charge."""
    from django.db import connection

    from budgets.models import Usage
    from jobs.runner import execute
    from tests.budgets.test_concurrency import run_together

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes every writer; races need PostgreSQL")

    @temp_handler("test.flaky", cost="0.20", timeout=30, max_attempts=3, retry_on=["network_error", "worker_lost"])
    def flaky(ctx):
        return None

    set_policy(acme, daily_limit="5.00", max_concurrent=2)
    job = submit("test.flaky")
    if race == "claim":
        run_together([lambda: claim(job.public_id), _cancel_meanwhile(job)])
    else:
        assert claim(job.public_id) is not None
        if race == "settle_into_retry":
            failed = Outcome(ok=False, code="network_error", message="reset by peer")
            run_together([lambda: settle(job_pk=job.pk, attempt=1, outcome=failed), _cancel_meanwhile(job)])
        else:
            Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
            run_together([rescue_expired, _cancel_meanwhile(job)])
            rescue_expired()  # the ticker's next round, when the cancel's lock made this one skip it
    job.refresh_from_db()
    if job.status == Job.Status.RUNNING:  # the worker won: its handler sees the cancel and settles
        assert job.cancel_requested
        settle(job_pk=job.pk, attempt=job.attempts, outcome=execute(job, runner.find_handler("test.flaky")))
        job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED and job.cancelled_by == "alice"
    assert claim(job.public_id) is None  # a late delivery starts nothing
    assert BudgetPolicy.objects.get(team=acme).running == 0
    assert sum(Usage.objects.filter(team=acme).values_list("reserved", flat=True)) == 0
    entries = Ledger.objects.filter(job_id=job.public_id, scope="", window_kind="day")
    kinds = list(entries.values_list("kind", flat=True))
    assert sorted(kinds) == sorted(["reserve", "release", "charge"] * job.attempts)
