"""The submit's fast path (jobs.dispatch.hand_over_at_submit): with room in flight and nothing else
waiting, the job is marked handed over in the submit's own transaction and enqueued when it
commits, without a dispatch transaction of its own. Otherwise the dispatcher chooses as before:
PULSE_DISPATCH_CAPACITY still bounds what django-q2 holds, and a free slot still goes to the team
with the fewest jobs in flight."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import dispatch
from jobs.models import Job
from jobs.pausing import queue_pause
from jobs.runner import run_job
from pulse_site.locks import lock_key

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


@pytest.fixture
def enqueued(monkeypatch) -> list[str]:
    """The job ids handed to django-q2 (its async_task is the edge; nothing reaches a broker)."""
    sent: list[str] = []
    monkeypatch.setattr(dispatch, "async_task", lambda func, job_id, **options: sent.append(job_id))
    return sent


def dispatched(*jobs: Job) -> list[bool]:
    return [Job.objects.get(pk=job.pk).dispatched_at is not None for job in jobs]


def test_a_job_submitted_with_room_is_handed_over_by_its_own_commit(submit, enqueued):
    with CaptureQueriesContext(connection) as queries:
        job = submit()
    job.refresh_from_db()
    assert job.dispatched_at == job.created_at
    assert enqueued == [job.public_id]
    # One transaction: no dispatch transaction after the submit's (its lock, choice, UPDATE, commit).
    assert [q["sql"] for q in queries.captured_queries].count("COMMIT") == 1
    assert not any("UPDATE" in q["sql"] for q in queries.captured_queries)


def test_capacity_still_bounds_what_django_q2_holds(submit, enqueued, settings):
    settings.PULSE_DISPATCH_CAPACITY = 2
    jobs = [submit() for _ in range(5)]
    assert dispatched(*jobs) == [True, True, False, False, False]
    assert enqueued == [jobs[0].public_id, jobs[1].public_id]


def test_with_a_backlog_the_slot_goes_to_the_team_with_the_fewest_jobs_in_flight(submit, enqueued, settings, globex):
    settings.PULSE_DISPATCH_CAPACITY = 1
    acme_first = submit()
    globex_waiting = submit(team=globex)
    assert dispatched(acme_first, globex_waiting) == [True, False]
    # A slot frees; acme submits again. Handing acme's new job over at once would skip globex,
    # which has nothing in flight and waited longer: the submit leaves the choice to the dispatch.
    settings.PULSE_DISPATCH_CAPACITY = 2
    acme_second = submit()
    assert dispatched(acme_first, globex_waiting, acme_second) == [True, True, False]
    assert enqueued == [acme_first.public_id, globex_waiting.public_id]


def test_a_job_due_later_is_not_handed_over_at_submit(submit, enqueued):
    job = submit(run_after=timezone.now() + timezone.timedelta(minutes=5))
    assert dispatched(job) == [False]
    assert enqueued == []


def test_inside_a_callers_transaction_the_job_is_dispatched_after_that_commit(submit, enqueued):
    with transaction.atomic():
        job = submit()
        assert dispatched(job) == [False]  # no dispatch lock held for the caller's transaction
    assert dispatched(job) == [True]
    assert enqueued == [job.public_id]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_submit_does_not_wait_for_a_dispatcher_at_work(acme, enqueued):
    from django.db import connections

    job = Job(team=acme, handler="pulse.noop", payload={}, source=Job.Source.API, timeout_seconds=60)
    other = connections.create_connection("default")  # a dispatcher in another process
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [lock_key("pulse.dispatch")])
        with transaction.atomic():
            assert dispatch.hand_over_at_submit(job, timezone.now()) is False
        assert job.dispatched_at is None
    finally:
        other.close()


def test_a_job_submitted_while_its_queue_is_paused_is_held_not_started(submit, enqueued, acme):
    queue_pause(scope="team", team=acme, reason="maintenance", by="alice")
    job = submit()
    run_job(enqueued[0])
    job.refresh_from_db()
    assert (job.status, job.attempts, job.dispatched_at) == (Status.PAUSED, 0, None)
    assert [r["kind"] for r in job.hold_reasons] == ["queue_paused"]


def test_a_dispatch_with_nothing_waiting_is_one_read_without_a_lock(submit, enqueued, settings):
    settings.PULSE_DISPATCH_CAPACITY = 1
    first, due_later = submit(), submit(run_after=timezone.now() + timezone.timedelta(minutes=5))
    with CaptureQueriesContext(connection) as queries:
        assert dispatch.dispatch() == 0
    assert len(queries.captured_queries) == 1  # SELECT 1 ... LIMIT 1 of the ready backlog
    assert enqueued == [first.public_id]


def test_a_job_waiting_for_a_slot_is_dispatched_when_the_slot_frees(submit, enqueued, settings):
    settings.PULSE_DISPATCH_CAPACITY = 1
    settings.PULSE_CHAIN_SECONDS = 0  # the worker does not go on to the next job itself
    first, second = submit(), submit()
    assert dispatched(first, second) == [True, False]
    run_job(first.public_id)  # settles, then dispatches
    assert Job.objects.get(pk=second.pk).status == Status.QUEUED and dispatched(second) == [True]
    assert enqueued == [first.public_id, second.public_id]


def test_the_submits_read_of_jobs_in_flight_and_waiting_agrees_with_the_dispatchers(submit, enqueued, settings,
                                                                                    globex):
    # Its SQL is written out (jobs.dispatch._in_flight_and_waiting_sql); the dispatcher's is IN_FLIGHT
    # and _ready through the ORM. Every state a job can be in, one at a time and together.
    settings.PULSE_DISPATCH_CAPACITY = 1
    now = timezone.now()

    def both() -> tuple[tuple[int, bool], tuple[int, bool]]:
        orm = (Job.objects.filter(dispatch.IN_FLIGHT).count(), dispatch._ready(now).exists())
        return dispatch._in_flight_and_waiting(now), orm

    assert both() == ((0, False), (0, False))
    later = submit(run_after=now + timezone.timedelta(minutes=5))  # queued, due later: neither
    assert both() == ((0, False), (0, False))
    handed_over = submit()  # queued and handed over: in flight
    assert both() == ((1, False), (1, False))
    waiting = submit(team=globex)  # queued, no room: waiting
    assert both() == ((1, True), (1, True))
    Job.objects.filter(pk=handed_over.pk).update(status=Status.RUNNING)
    Job.objects.filter(pk=later.pk).update(run_after=now - timezone.timedelta(seconds=1))
    Job.objects.filter(pk=waiting.pk).update(status=Status.PAUSED)
    assert both() == ((1, True), (1, True))  # running is in flight; a job due before now waits
    Job.objects.filter(pk=later.pk).update(start_by=now - timezone.timedelta(seconds=1))
    assert both() == ((1, False), (1, False))  # a staged run that missed its slot waits for its schedule
    Job.objects.filter(pk=later.pk).update(attempts=1)
    assert both() == ((1, True), (1, True))  # once started, a retry of it is no missed slot
    Job.objects.filter(pk__in=[handed_over.pk, later.pk]).update(status=Status.COMPLETED)
    assert both() == ((0, False), (0, False))


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_a_job_sent_before_its_submit_commits_is_claimed_once_it_has(submit, monkeypatch):
    # On PostgreSQL the message leaves before the job's INSERT commits (its way to a worker overlaps
    # the commit). A worker that gets it at once waits for the submit's lock, then claims the job.
    from django.db import connections

    from jobs import runner

    claimed: list[object] = []

    def claim_in_a_worker(job_id: str) -> None:
        try:
            claimed.append(runner.claim(job_id))
        finally:
            connections.close_all()

    def send(func, job_id, **options):
        worker = threading.Thread(target=claim_in_a_worker, args=(job_id,))
        worker.start()
        threads.append(worker)
        # Go on with the submit only once the worker's claim waits for it.
        with connections["default"].cursor() as cursor:
            for _ in range(500):
                cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                if cursor.fetchone()[0]:
                    return
                time.sleep(0.01)
        raise AssertionError("the worker's claim did not wait for the submit")

    threads: list[threading.Thread] = []
    monkeypatch.setattr(dispatch, "async_task", send)
    job = submit()
    threads[0].join(timeout=30)
    [started] = claimed
    assert started is not None and started[0].public_id == job.public_id
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Status.RUNNING, 1)
