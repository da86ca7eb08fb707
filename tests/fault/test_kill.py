"""Workers and tickers killed as a power cut or a supervisor would kill them: nothing is lost, no
handler runs twice to completion, nothing is left running. Real qcluster and pulse_ticker processes
on PostgreSQL. Figures are printed (run with -s to see them)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from django.utils import timezone

from jobs.models import Attempt, Job
from jobs.services import job_submit
from tests.fault.conftest import FINAL, finished_runs, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(600)]
Status = Job.Status
LEASE, RESCUE_EVERY = 3.0, 1.0  # PULSE_LEASE_SECONDS in the fixture; the jobs.rescue step's period


def submit(team, count: int, steps: int, seconds: float) -> list[Job]:
    return [job_submit(team=team, handler="fault.work", payload={"steps": steps, "seconds": seconds},
                       source="api").job for _ in range(count)]


def statuses(jobs: list[Job]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def test_a_worker_killed_mid_job_is_rescued_within_lease_and_a_tick_and_completes_once(acme, processes):
    processes.start("qcluster")
    processes.start("pulse_ticker")
    [job] = submit(acme, 1, steps=40, seconds=0.1)
    wait_for(lambda: Job.objects.get(pk=job.pk).progress_current >= 2, what="progress")
    pid = int(Job.objects.get(pk=job.pk).worker.rsplit(":", 1)[1])
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: Attempt.objects.filter(job=job, outcome="worker_lost").exists(), timeout=30, what="rescue")
    rescued_after = time.monotonic() - killed
    wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, timeout=60, what="completed")
    print(f"\nworker SIGKILL: lost attempt recorded {rescued_after:.2f} s after the kill "
          f"(bound: lease {LEASE:.0f} s + rescue period {RESCUE_EVERY:.0f} s + 1 s polling)")
    assert rescued_after <= LEASE + RESCUE_EVERY + 1.0
    assert list(Attempt.objects.filter(job=job).order_by("number").values_list("outcome", flat=True)) == [
        "worker_lost", "completed"]
    assert finished_runs() == {job.pk: 1}


def _kill_everything_and_restart(team, processes, *, jobs: int, workers: int, steps: int) -> None:
    env = {"PULSE_WORKERS": str(workers)}
    # The whole backlog is in before the cluster starts, so the kill finds it queued, not done
    # (submitting one by one on a loaded machine took longer than running the first ones).
    submitted = submit(team, jobs, steps=steps, seconds=0.1)
    processes.start("qcluster", **env)
    processes.start("pulse_ticker", **env)
    running = wait_for(lambda: list(Job.objects.filter(status=Status.RUNNING).values_list("pk", flat=True))
                       if Job.objects.filter(status=Status.RUNNING).count() >= workers else None,
                       timeout=60, what=f"{workers} running")
    before = statuses(submitted)
    processes.kill_all()
    killed_at = timezone.now()
    started = time.monotonic()
    processes.start("qcluster", **env)
    processes.start("pulse_ticker", **env)
    wait_for(lambda: statuses(submitted).get(Status.COMPLETED, 0) == jobs, timeout=300, what="all completed")
    took = time.monotonic() - started
    runs = finished_runs()
    lost_attempts = Attempt.objects.filter(outcome="worker_lost")
    lost = set(lost_attempts.values_list("job_id", flat=True))
    # Lost attempts begun after the kill: leases that ran out on a live worker of the new cluster.
    lost_later = lost_attempts.filter(started_at__gt=killed_at).count()
    twice = {pk for pk, n in runs.items() if n > 1}
    print(f"\nkill -9 of every worker and ticker with {before}: all {jobs} completed {took:.1f} s after the restart; "
          f"{lost_attempts.count()} lost attempts recorded on {len(lost)} jobs ({lost_later} of them begun after "
          f"the restart); handlers run to their last line twice: {len(twice)}")
    assert Job.objects.filter(pk__in=[j.pk for j in submitted]).exclude(status__in=FINAL).count() == 0
    assert set(runs) == {j.pk for j in submitted}
    # Settled completed exactly once per job, whatever happened to the workers.
    assert Attempt.objects.filter(job__in=submitted, outcome="completed").count() == jobs
    # At-least-once, honestly: a handler runs to its end a second time only when the worker that ran
    # it the first time died after the handler's last line and before the settle committed.
    assert twice <= lost
    # Every job that was running at the kill has its lost attempt recorded (or had settled just before).
    assert set(running) - lost <= set(Job.objects.filter(pk__in=running, attempts=1).values_list("pk", flat=True))


def test_kill_9_of_every_worker_and_ticker_then_restart_loses_nothing_short(acme, processes):
    _kill_everything_and_restart(acme, processes, jobs=40, workers=4, steps=5)


@pytest.mark.slow
def test_kill_9_of_every_worker_and_ticker_with_200_queued_and_8_running_loses_nothing(acme, processes):
    _kill_everything_and_restart(acme, processes, jobs=200, workers=8, steps=20)


def _live_workers(leader: int) -> list[int]:
    """Processes of the cluster's group other than its leader that are still alive (not zombies)."""
    import psutil

    alive = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.pid != leader and os.getpgid(proc.pid) == leader and proc.info["status"] != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return alive


# "leader": SIGTERM to the qcluster process only, as pulse_up sends it; "group": to its whole
# process group, as systemd's control group and a terminal's Ctrl-C reach every process.
@pytest.mark.parametrize("to", ["leader", "group"])
def test_sigterm_lets_a_short_job_finish_and_interrupts_a_long_one_at_the_stop_timeout_for_another_worker(
        acme, processes, to):
    stop_timeout = 2.0
    cluster = processes.start("qcluster", PULSE_WORKERS="2", PULSE_STOP_TIMEOUT=str(stop_timeout))
    processes.start("pulse_ticker")
    short = submit(acme, 1, steps=10, seconds=0.1)[0]  # ~1 s: ends within the stop timeout
    long = submit(acme, 1, steps=80, seconds=0.1)[0]  # ~8 s: does not
    # Both handlers under way (a job is marked running at its claim, a moment before its handler
    # starts: a stop in between puts it back unstarted, which is another test's case).
    wait_for(lambda: Job.objects.filter(pk__in=[short.pk, long.pk], status=Status.RUNNING,
                                        progress_current__gte=1).count() == 2, what="both handlers running")
    if to == "leader":
        cluster.send_signal(signal.SIGTERM)
    else:
        processes.signal(cluster, signal.SIGTERM)
    signalled, signalled_at = time.monotonic(), timezone.now()
    grace = stop_timeout + 15.0
    # Every worker exits by itself once its job is settled: none is left behind as an orphan.
    wait_for(lambda: not _live_workers(cluster.pid), timeout=grace, what="the workers gone")
    workers_gone_after = time.monotonic() - signalled
    try:
        # (The group's leader may hang, below: it gets a short wait only.)
        cluster.wait(timeout=max(0.5, grace - workers_gone_after) if to == "leader" else 3.0)
        exited_after = time.monotonic() - signalled
    except subprocess.TimeoutExpired:
        processes.signal(cluster, signal.SIGKILL)  # the supervisor's grace period is over
        cluster.wait()
        exited_after = None
    short.refresh_from_db()
    long.refresh_from_db()
    interrupted = Attempt.objects.filter(job=long, number=1).first()
    # Settled by the stopping worker itself, not rescued after its lease: no ticker step involved.
    assert short.status == Status.COMPLETED
    assert long.status == Status.QUEUED and long.error_code == "interrupted" and long.lease_expires_at is None
    assert interrupted is not None and interrupted.outcome == "interrupted"
    interrupted_after = (interrupted.finished_at - signalled_at).total_seconds()
    processes.start("qcluster", PULSE_WORKERS="2")
    wait_for(lambda: Job.objects.get(pk=long.pk).status == Status.COMPLETED, timeout=90, what="long completed")
    long_outcomes = list(Attempt.objects.filter(job=long).order_by("number").values_list("outcome", flat=True))
    print(f"\nSIGTERM to the {to} with PULSE_STOP_TIMEOUT={stop_timeout:.0f} s: workers gone after "
          f"{workers_gone_after:.1f} s, leader exited after "
          f"{f'{exited_after:.1f} s' if exited_after is not None else 'never (killed)'}; long job interrupted "
          f"{interrupted_after:.2f} s after the signal; short job attempts "
          f"{list(Attempt.objects.filter(job=short).values_list('outcome', flat=True))}, long job attempts {long_outcomes}")
    if to == "leader":
        # (A SIGTERM to the whole group kills django-q2's sentinel, which can leave its leader hung on
        # the stop event's lock, django-q2#346: a supervisor's SIGKILL after the grace ends it.)
        assert exited_after is not None, "the cluster did not stop by itself after its stop timeout"
    assert stop_timeout - 0.5 <= interrupted_after <= stop_timeout + 2.0
    assert list(Attempt.objects.filter(job=short).values_list("outcome", flat=True)) == ["completed"]
    assert long_outcomes == ["interrupted", "completed"]
    assert finished_runs() == {short.pk: 1, long.pk: 1}
