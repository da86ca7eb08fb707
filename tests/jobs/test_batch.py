"""A chaining worker takes several short jobs of one team and handler at once (jobs.runner:
`_batch_limit`, `_settle_then_start`): one transaction settles a batch and claims the next, and
each job still gets its own gate decision, attempt, log lines and events."""

from __future__ import annotations

import pytest

from budgets.models import BudgetPolicy, Ledger, Start
from budgets.services import budget_policy_update, budget_repair
from jobs import runner, stopping
from jobs.models import Attempt, Job, TaskLog
from jobs.runner import run_job
from jobs.services import job_cancel, job_submit
from pulse_site.live.models import Event
from tests.jobs import cluster_handlers  # noqa: F401  (the same handlers the cluster loads)
from tests.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
Status = Job.Status


@pytest.fixture
def batches(settings, monkeypatch):
    # The submit's dispatch hands over only the first job; the rest is chained in batches of 3.
    settings.PULSE_DISPATCH_CAPACITY = 1
    settings.PULSE_CHAIN_SECONDS = 30
    settings.PULSE_CHAIN_BATCH = 3
    monkeypatch.setattr(runner, "_run_ms", {})  # no handler has run in this process yet


def kinds_in_order(jobs: list[Job]) -> list[tuple[str, int]]:
    """The started/completed/cancelled events of `jobs`, as (kind, index of the job)."""
    index = {job.public_id: i for i, job in enumerate(jobs)}
    return [(kind.removeprefix("job."), index[subject]) for kind, subject in
            Event.objects.filter(subject__in=index, kind__in=["job.started", "job.completed", "job.cancelled"])
            .order_by("id").values_list("kind", "subject")]


def test_a_short_handler_is_taken_in_batches_each_job_with_its_attempt_logs_and_events(batches, submit, acme):
    jobs = [submit() for _ in range(6)]
    run_job(jobs[0].public_id)
    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)) == {
        Status.COMPLETED}
    # The first job runs alone (pulse.noop's run time is not known yet), then three are claimed
    # together, run one after the other and settled together with the claim of the last two.
    assert kinds_in_order(jobs) == [
        ("started", 0), ("completed", 0),
        ("started", 1), ("started", 2), ("started", 3),
        ("completed", 1), ("completed", 2), ("completed", 3),
        ("started", 4), ("started", 5),
        ("completed", 4), ("completed", 5),
    ]
    starts = []
    for job in Job.objects.filter(pk__in=[j.pk for j in jobs]).order_by("pk"):
        attempt = Attempt.objects.get(job=job)
        assert attempt.number == 1 and attempt.outcome == Attempt.Outcome.COMPLETED
        assert attempt.started_at <= attempt.finished_at and job.started_at == attempt.started_at
        starts.append(attempt.started_at)
        messages = list(TaskLog.objects.filter(job=job).order_by("id").values_list("message", flat=True))
        assert len(messages) == 2
        assert messages[0].startswith("Attempt 1 of ") and messages[1].startswith("Completed in ")
    # The attempt's start is when its handler was called, not the batch's claim (one moment).
    assert starts == sorted(set(starts))
    # Each job was counted once: a start, a reservation and its release and charge; the counters
    # equal the ledger and no slot is left counted.
    assert Start.objects.filter(team=acme).count() == 6
    assert Ledger.objects.filter(team_id=acme.pk, kind=Ledger.Kind.CHARGE, scope="", window_kind="day").count() == 6
    assert budget_repair(team_id=acme.pk) == []
    assert BudgetPolicy.objects.get(team=acme).running == 0


def test_a_batch_never_exceeds_the_concurrency_limit_and_the_rest_waits_unheld(batches, submit, acme, temp_handler):
    seen = []

    @temp_handler("test.count", timeout=30)
    def count(ctx):
        seen.append(Job.objects.filter(team=acme, status=Status.RUNNING).count())

    budget_policy_update(team=acme, changes={"max_concurrent": 2}, by=None)
    runner._run_ms["test.count"] = 0.0  # known to be short: batches from the start
    jobs = [submit("test.count") for _ in range(7)]
    run_job(jobs[0].public_id)
    assert set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True)) == {
        Status.COMPLETED}
    # Batches of 2 (the limit), not 3: a batch member waiting for its turn counts as running.
    assert max(seen) == 2 and seen.count(2) >= 4
    assert not Event.objects.filter(kind="job.paused").exists()
    assert BudgetPolicy.objects.get(team=acme).running == 0
    assert budget_repair(team_id=acme.pk) == []


def test_a_batch_member_cancelled_before_its_turn_does_not_run(batches, submit, acme, temp_handler, monkeypatch):
    ran = []
    jobs: list[Job] = []

    @temp_handler("test.cancels_next", timeout=30)
    def cancels_next(ctx):
        ran.append(ctx.job_id)
        if ctx.job_id == jobs[1].public_id:
            job_cancel(job=Job.objects.get(pk=jobs[2].pk), by="test")

    monkeypatch.setattr(runner, "BATCH_RECHECK_SECONDS", 0)  # check before every turn
    runner._run_ms["test.cancels_next"] = 0.0
    jobs.extend(submit("test.cancels_next") for _ in range(4))
    run_job(jobs[0].public_id)
    assert ran == [jobs[0].public_id, jobs[1].public_id, jobs[3].public_id]
    cancelled = Job.objects.get(pk=jobs[2].pk)
    assert cancelled.status == Status.CANCELLED
    assert Attempt.objects.get(job=cancelled).outcome == Attempt.Outcome.CANCELLED
    assert list(TaskLog.objects.filter(job=cancelled).order_by("id").values_list("message", flat=True))[-1] == (
        "Cancelled after 0 ms")
    assert [kind for kind, i in kinds_in_order(jobs) if i == 2] == ["started", "cancelled"]
    assert Job.objects.get(pk=jobs[3].pk).status == Status.COMPLETED
    assert BudgetPolicy.objects.get(team=acme).running == 0
    assert budget_repair(team_id=acme.pk) == []


def test_batch_members_after_a_stop_request_go_back_to_the_queue_unstarted(batches, submit, acme, temp_handler):
    ran = []
    jobs: list[Job] = []

    @temp_handler("test.stops_worker", timeout=30, max_attempts=1)
    def stops_worker(ctx):
        ran.append(ctx.job_id)
        if ctx.job_id == jobs[1].public_id:
            stopping.request_stop()  # the SIGTERM arrives while the batch's first job runs

    runner._run_ms["test.stops_worker"] = 0.0
    jobs.extend(submit("test.stops_worker") for _ in range(4))
    stopping.reset()
    try:
        run_job(jobs[0].public_id)
    finally:
        stopping.reset()
    assert ran == [jobs[0].public_id, jobs[1].public_id]
    statuses = dict(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("pk", "status"))
    assert [statuses[j.pk] for j in jobs] == [Status.COMPLETED, Status.COMPLETED, Status.QUEUED, Status.QUEUED]
    for job in jobs[2:]:
        job.refresh_from_db()
        # Its attempt was not used up: one more is allowed, and the job waits for another worker.
        assert list(Attempt.objects.filter(job=job).values_list("outcome", flat=True)) == ["interrupted"]
        assert job.max_attempts == 2 and job.worker == ""
    assert BudgetPolicy.objects.get(team=acme).running == 0
    assert budget_repair(team_id=acme.pk) == []


def test_a_slow_handler_is_taken_one_job_at_a_time(batches, submit):
    runner._run_ms["pulse.noop"] = 1_000.0  # a second a job: over the batch's 50 ms
    jobs = [submit() for _ in range(3)]
    run_job(jobs[0].public_id)
    assert kinds_in_order(jobs)[:4] == [("started", 0), ("completed", 0), ("started", 1), ("completed", 1)]


@pytest.mark.timeout(180)
def test_two_real_workers_taking_batches_never_exceed_a_concurrency_limit(acme, processes):
    # test.count_running returns how many of its team's jobs were running while it ran, counting
    # batch members claimed and waiting for their turn.
    budget_policy_update(team=acme, changes={"max_concurrent": 3}, by=None)
    jobs = [job_submit(team=acme, handler="test.count_running", payload={}, source="api").job for _ in range(60)]
    processes.start("qcluster")
    processes.start("pulse_ticker")
    wait_for(lambda: Job.objects.filter(pk__in=[j.pk for j in jobs], status=Status.COMPLETED).count() == 60,
             timeout=120, what="all completed")
    observed = list(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("result", flat=True))
    assert 1 <= max(observed) <= 3
    assert Attempt.objects.filter(job__in=jobs).count() == 60
    assert Event.objects.filter(subject__in=[j.public_id for j in jobs], kind="job.started").count() == 60
    assert Event.objects.filter(subject__in=[j.public_id for j in jobs], kind="job.completed").count() == 60
    wait_for(lambda: BudgetPolicy.objects.get(team=acme).running == 0, what="no slot left counted")
    assert budget_repair(team_id=acme.pk) == []


def test_a_handler_not_yet_run_here_is_taken_one_job_at_a_time_after_a_short_one(batches, submit, temp_handler):
    @temp_handler("test.unseen", timeout=30)
    def unseen(ctx):
        return None

    runner._run_ms["pulse.noop"] = 0.0  # short: would take three at once
    jobs = [submit(), submit("test.unseen"), submit("test.unseen"), submit("test.unseen")]
    run_job(jobs[0].public_id)
    # test.unseen's first job runs alone; once it has run, the other two are taken together.
    assert kinds_in_order(jobs) == [
        ("started", 0), ("completed", 0), ("started", 1), ("completed", 1),
        ("started", 2), ("started", 3), ("completed", 2), ("completed", 3),
    ]
