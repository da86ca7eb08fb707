"""A worker that settles a job goes straight on to the next one the dispatcher would choose, in
the same transaction (jobs.runner.settle_and_take_next): the backlog drains without a dispatch,
a broker round trip and an extra commit per job, and every job still passes the same gate."""

from __future__ import annotations

import pytest

from budgets.models import BudgetPolicy, Start
from budgets.services import budget_policy_update
from jobs.models import Attempt, Job
from jobs.pausing import queue_pause
from jobs.runner import run_job
from pulse_site.live.models import Event

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


@pytest.fixture
def one_in_flight(settings):
    # The submit's dispatch hands over only the first job: the rest wait in the backlog.
    settings.PULSE_DISPATCH_CAPACITY = 1
    settings.PULSE_CHAIN_SECONDS = 30


def started_order(jobs: list[Job]) -> list[str]:
    ids = {job.public_id for job in jobs}
    return [s for s in Event.objects.filter(kind="job.started").order_by("id").values_list("subject", flat=True)
            if s in ids]


def test_one_task_runs_the_backlog_each_job_once_with_its_own_attempt_and_events(one_in_flight, submit, acme):
    jobs = [submit() for _ in range(4)]
    run_job(jobs[0].public_id)
    assert list(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)) == [
        Status.COMPLETED] * 4
    assert started_order(jobs) == [j.public_id for j in jobs]  # FIFO within the team
    for job in jobs:
        assert Attempt.objects.filter(job=job).count() == 1
        kinds = list(Event.objects.filter(subject=job.public_id).order_by("id").values_list("kind", flat=True))
        assert kinds == ["job.created", "job.started", "job.completed"]
    # The slot passed from job to job: nothing is left counted as running, every start counted.
    assert BudgetPolicy.objects.get(team=acme).running == 0
    assert Start.objects.filter(team=acme).count() == 4


def test_with_chaining_off_a_task_runs_its_own_job_only(one_in_flight, settings, submit):
    settings.PULSE_CHAIN_SECONDS = 0
    first, second = submit(), submit()
    run_job(first.public_id)
    assert Job.objects.get(pk=first.pk).status == Status.COMPLETED
    assert Job.objects.get(pk=second.pk).status == Status.QUEUED


def test_a_chained_job_passes_the_gate_and_is_held_when_the_concurrency_limit_is_reached(one_in_flight, submit, acme):
    budget_policy_update(team=acme, changes={"max_concurrent": 1}, by=None)
    jobs = [submit() for _ in range(3)]
    run_job(jobs[0].public_id)
    # One at a time, and each after the previous one ended: the limit of 1 is never exceeded.
    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)) == {Status.COMPLETED}
    assert BudgetPolicy.objects.get(team=acme).running == 0


def test_a_paused_handler_stops_the_chain_and_holds_its_job(one_in_flight, submit, acme, temp_handler):
    ran = []

    @temp_handler("test.paused", timeout=30)
    def paused(ctx):
        ran.append(ctx.job_id)

    first = submit()
    held = submit("test.paused")
    queue_pause(scope="handler", handler="test.paused", reason="maintenance", by="ops")
    run_job(first.public_id)
    assert Job.objects.get(pk=first.pk).status == Status.COMPLETED
    held.refresh_from_db()
    assert held.status == Status.PAUSED and held.hold_reasons[0]["kind"] == "queue_paused"
    assert held.attempts == 0 and not Attempt.objects.filter(job=held).exists() and ran == []
    assert BudgetPolicy.objects.get(team=acme).running == 0


def test_a_job_whose_timeout_does_not_fit_in_the_task_is_left_to_the_dispatcher(one_in_flight, submit):
    first = submit()  # pulse.noop: django-q2 kills its task after 60 + 30 s
    long = submit("pulse.sleep", {"steps": 1, "seconds": 0})  # timeout 3600 s: never fits
    run_job(first.public_id)
    long.refresh_from_db()
    assert long.status == Status.QUEUED and long.attempts == 0
    assert long.dispatched_at is not None  # handed over by the dispatch that ends the task


def test_a_chain_from_one_team_to_another_locks_both_policies_in_team_order_first(one_in_flight, submit, acme):
    """Settling team A's job and admitting team B's in one transaction takes two policy locks; taken
    as settle-then-admit, two workers chaining A→B and B→A deadlocked (seen in the soak). Both are
    locked by one statement in team order before either is used."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jobs.services import job_submit
    from pulse_site.teams.services import team_create

    other = team_create(name="Other", slug="other")
    budget_policy_update(team=other, changes={"max_concurrent": 5}, by=None)
    first = submit()
    second = job_submit(team=other, handler="pulse.noop", payload={}, source="api").job
    with CaptureQueriesContext(connection) as queries:
        run_job(first.public_id)
    assert Job.objects.get(pk=second.pk).status == Status.COMPLETED
    if connection.vendor != "postgresql":
        return  # SQLite has no row locks: one writer at a time
    # The chain's transaction (the one that took the next job, SKIP LOCKED): its first policy lock is
    # for both teams.
    transactions: list[list[str]] = []
    for query in queries:
        if query["sql"] == "BEGIN":
            transactions.append([])
        elif transactions:
            transactions[-1].append(query["sql"])
    [chain] = [sqls for sqls in transactions if any("SKIP LOCKED" in sql for sql in sqls)]
    policy_locks = [sql for sql in chain if 'FROM "budgets_budgetpolicy"' in sql and "FOR UPDATE" in sql]
    lowest, highest = sorted([acme.pk, other.pk])
    assert f'"team_id" IN ({lowest}, {highest}) ORDER BY "budgets_budgetpolicy"."team_id" ASC FOR UPDATE' in \
        policy_locks[0], policy_locks


def test_a_slot_freed_in_a_chain_goes_to_the_job_held_for_it_before_a_newer_one(one_in_flight, submit, acme):
    """The chain handed the freed slot straight to the next queued job, so a job held for that
    slot waited behind every job submitted after it (the release never ran: nothing was freed)."""
    from jobs.dispatch import dispatch
    from jobs.handlers.registry import get_handler
    from jobs.runner import claim, execute, settle_and_take_next

    budget_policy_update(team=acme, changes={"max_concurrent": 1}, by=None)
    running = submit()
    running, _ = claim(running.public_id)
    held = submit()
    run_job(held.public_id)  # the slot is taken: held for it
    assert Job.objects.get(pk=held.pk).status == Status.PAUSED
    newer = [submit(), submit()]
    taken = settle_and_take_next(done=[(running, execute(running, get_handler(running.handler)))], room=100_000)
    assert [job.public_id for job, _ in taken or []] in ([], [held.public_id])
    dispatch()
    first = Job.objects.filter(pk__in=[held.pk, *(j.pk for j in newer)]).exclude(
        status=Status.QUEUED, dispatched_at__isnull=True).exclude(status=Status.PAUSED)
    assert [j.public_id for j in first] == [held.public_id]  # the held job has the slot, the newer ones wait
