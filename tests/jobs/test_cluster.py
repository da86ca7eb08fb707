"""Jobs on real django-q2 clusters and a real ticker, as separate processes."""

from __future__ import annotations

import os
import signal

import pytest
from django_q.tasks import async_task

from jobs.models import Attempt, Job, TaskLog
from budgets.models import BudgetPolicy, Usage
from jobs.services import job_cancel, job_submit
from pulse_site.live.models import Event
from tests.jobs import cluster_handlers  # noqa: F401  (the same handlers the cluster loads)
from tests.processes import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]
Status = Job.Status


def status_of(job: Job) -> str:
    return Job.objects.values_list("status", flat=True).get(pk=job.pk)


def test_a_job_goes_queued_running_completed_with_progress_and_logs(acme, processes):
    processes.start("qcluster")
    processes.start("pulse_ticker")
    job = job_submit(team=acme, handler="test.steps", payload={"steps": 3, "seconds": 0.2}, source="api").job
    wait_for(lambda: status_of(job) == Status.COMPLETED, what="completed")
    job.refresh_from_db()
    assert (job.progress_current, job.progress_total, job.result) == (3, 3, {"done": 3})
    assert list(TaskLog.objects.filter(job=job, stage="work").values_list("message", flat=True)) == [
        "step 1", "step 2", "step 3"]
    kinds = list(Event.objects.filter(subject=job.public_id).values_list("kind", flat=True))
    assert kinds[:2] == ["job.created", "job.started"] and kinds[-1] == "job.completed"
    assert kinds.count("job.progress") >= 1


def test_the_same_task_delivered_twice_runs_the_handler_once(acme, processes):
    job = job_submit(team=acme, handler="test.steps", payload={"steps": 1, "seconds": 0.3}, source="api").job
    for _ in range(3):
        async_task("jobs.tasks.run_job", job.public_id)
    processes.start("qcluster")
    wait_for(lambda: status_of(job) == Status.COMPLETED, what="completed")
    assert Attempt.objects.filter(job=job).count() == 1
    assert TaskLog.objects.filter(job=job, stage="work").count() == 1


def test_a_worker_killed_mid_job_is_rescued_and_the_attempt_counted(acme, processes):
    processes.start("qcluster")
    processes.start("pulse_ticker")
    job = job_submit(team=acme, handler="test.steps", payload={"steps": 40, "seconds": 0.1}, source="api").job
    wait_for(lambda: Job.objects.get(pk=job.pk).progress_current >= 2, what="progress")
    pid = int(Job.objects.get(pk=job.pk).worker.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: status_of(job) == Status.COMPLETED, timeout=90, what="completed after rescue")
    outcomes = list(Attempt.objects.filter(job=job).values_list("outcome", flat=True))
    assert outcomes == ["worker_lost", "completed"]


def test_a_poison_job_stops_after_max_attempts_while_other_jobs_finish(acme, processes):
    processes.start("qcluster")
    processes.start("pulse_ticker")
    poison = job_submit(team=acme, handler="test.poison", payload={}, source="api").job
    others = [job_submit(team=acme, handler="test.steps", payload={"steps": 1, "seconds": 0.05}, source="api").job
              for _ in range(5)]
    wait_for(lambda: status_of(poison) == Status.FAILED, timeout=90, what="poison failed")
    wait_for(lambda: all(status_of(j) == Status.COMPLETED for j in others), what="others completed")
    poison.refresh_from_db()
    assert (poison.attempts, poison.error_code) == (2, "worker_lost")
    assert list(Attempt.objects.filter(job=poison).values_list("outcome", flat=True)) == ["worker_lost"] * 2


def test_a_handler_calling_sys_exit_fails_its_job_and_its_worker_lives_on(acme, processes):
    """django-q2 let the SystemExit end the worker process: the job stayed running until a
    ticker's rescue found its lease expired, then ran again as worker_lost (no ticker runs here)."""
    processes.start("qcluster")
    job = job_submit(team=acme, handler="test.exits", payload={}, source="api").job
    wait_for(lambda: status_of(job) == Status.FAILED, timeout=30, what="failed")
    job.refresh_from_db()
    assert (job.error_code, job.error_message) == (
        "unknown", "SystemExit: done here (raised by the handler: it ends the attempt, not the worker; raise "
                   "JobError to fail the job)")
    os.kill(int(job.worker.rsplit(":", 1)[1]), 0)  # raises ProcessLookupError if it is gone


def test_a_cancelled_handler_that_never_returns_is_stopped_after_the_grace_and_frees_its_slot(acme, processes):
    """On a real worker process (the handler in its main thread, the heartbeat beside it): a cancel
    that the handler ignores stops it PULSE_CANCEL_GRACE_SECONDS later, not at its 60 s timeout;
    the job ends cancelled, its reservation and running slot released."""
    processes.start("qcluster", PULSE_CANCEL_GRACE_SECONDS="1")
    job = job_submit(team=acme, handler="test.deaf", payload={}, source="api").job
    wait_for(lambda: TaskLog.objects.filter(job=job, stage="work").exists(), what="the handler running")
    job_cancel(job=Job.objects.get(pk=job.pk), by="alice")
    wait_for(lambda: status_of(job) == Status.CANCELLED, timeout=20, what="cancelled by force")
    attempt = Attempt.objects.get(job=job)
    assert attempt.outcome == Attempt.Outcome.CANCELLED
    assert attempt.error_message == "Stopped 1 s after the cancel: the handler had not returned."
    assert (attempt.finished_at - attempt.started_at).total_seconds() < 30  # its timeout is 60 s
    assert BudgetPolicy.objects.get(team=acme).running == 0
    assert sum(Usage.objects.filter(team=acme).values_list("reserved", flat=True)) == 0


def test_a_clusters_output_says_its_workers_started_and_what_its_stop_interrupted(acme, processes):
    """Under a supervisor, `qcluster`'s output said nothing at all (django-q2's logger writes
    warnings only): not that its workers were up, with which handler modules, nor that a SIGTERM
    stopped it, nor which running job the stop interrupted and sent back to the queue."""
    cluster = processes.start("qcluster", PULSE_WORKERS="1", PULSE_STOP_TIMEOUT="1")
    job = job_submit(team=acme, handler="test.steps", payload={"steps": 200, "seconds": 0.1}, source="api").job
    wait_for(lambda: Job.objects.get(pk=job.pk).progress_current >= 1, what="the handler running")
    worker = Attempt.objects.get(job=job).worker
    cluster.send_signal(signal.SIGTERM)
    cluster.wait(timeout=30)
    output = processes.log_files[-1].read_text()
    started = next((line for line in output.splitlines() if f"worker {worker} started" in line), "")
    assert "tests.jobs.cluster_handlers" in started, output
    assert "stopping on SIGTERM" in output and "PULSE_STOP_TIMEOUT" in output, output
    # What the job and its attempts say, for a failure to tell how the stop went (it failed once in
    # a loaded CI run with the worker gone and no line of its own).
    said = output + "".join(f"\nattempt {a.number}: {a.outcome} {a.error_code} {a.error_message}"
                            for a in Attempt.objects.filter(job=job).order_by("number"))
    assert f"{job.public_id} interrupted" in output and worker in output, said + f"\njob: {status_of(job)}"
    assert status_of(job) == Status.QUEUED


@pytest.mark.parametrize("where", ["sleep", "query"])
def test_a_handler_deaf_to_its_timeout_ends_as_timeout_charged_its_estimate_and_the_worker_goes_on(
        acme, processes, where):
    """On a real worker (one process, so the next job proves it recovered): a handler that
    swallows every Exception in a sleep loop, or waits in a query of its own, past its 1 s
    timeout. The query's case left the job running until the lease's rescue (see test_run)."""
    from django.db import connection

    from budgets.services import budget_policy_update

    if where == "query" and connection.vendor != "postgresql":
        pytest.skip("SQLite runs a query to its end before a signal is handled")
    budget_policy_update(team=acme, changes={"daily_limit": "5.00", "max_concurrent": 1}, by=None)
    processes.start("qcluster", PULSE_WORKERS="1")
    processes.start("pulse_ticker")
    job = job_submit(team=acme, handler="test.overrun", payload={"query": where == "query"}, source="api").job
    after = job_submit(team=acme, handler="test.steps", payload={"steps": 1, "seconds": 0.05}, source="api").job
    wait_for(lambda: status_of(after) == Status.COMPLETED, what="the next job completed")
    job.refresh_from_db()
    attempt = Attempt.objects.get(job=job)
    assert (job.status, job.error_code, attempt.outcome) == (Status.FAILED, "timeout", Attempt.Outcome.FAILED)
    assert job.error_message == "The handler ran longer than its timeout of 1 s."
    assert attempt.worker == Attempt.objects.get(job=after).worker  # the same worker, recovered
    day = Usage.objects.get(team=acme, scope="", kind="day")
    assert (job.cost_actual, day.committed, day.reserved) == (250_000, 250_000 + after.cost_estimate, 0)
    assert BudgetPolicy.objects.get(team=acme).running == 0
