"""Retention: finished jobs (with attempts and logs), executions and events are pruned past their
ages, team by team, in batches; nothing queued, held, running or still needed is pruned."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Attempt, Job, TaskLog
from jobs.retention import jobs_prune
from jobs.runner import run_job
from jobs.services import job_submit
from pulse_site.live.models import Event
from pulse_site.live.relay import events_prune
from pulse_site.ticker import registered_steps
from schedules.models import Execution
from schedules.retention import executions_prune
from schedules.services import schedule_create, schedule_trigger

pytestmark = pytest.mark.django_db
Status = Job.Status


@pytest.fixture
def job(acme, settings):
    settings.PULSE_PROGRESS_INTERVAL = 0

    def make(status: str, days_ago: float, team=None, run: bool = False) -> Job:
        created = job_submit(team=team or acme, handler="demo.report" if run else "pulse.noop",
                             payload={"delay": 0} if run else {}, source="api").job
        if run:
            run_job(created.public_id)
        finished = timezone.now() - timedelta(days=days_ago)
        Job.objects.filter(pk=created.pk).update(status=status, completed_at=finished if status in (
            Status.COMPLETED, Status.FAILED, Status.CANCELLED) else None)
        return created

    return make


def remaining(*jobs: Job) -> list[bool]:
    return [Job.objects.filter(pk=j.pk).exists() for j in jobs]


def test_finished_jobs_past_the_age_go_with_their_attempts_and_logs_and_the_rest_stay(job, acme, globex):
    old_done = job(Status.COMPLETED, 31, run=True)
    assert Attempt.objects.filter(job=old_done).count() == 1 and TaskLog.objects.filter(job=old_done).exists()
    old_failed, old_cancelled = job(Status.FAILED, 45), job(Status.CANCELLED, 60, team=globex)
    young = job(Status.COMPLETED, 29)
    queued, held, running = job(Status.QUEUED, 90), job(Status.PAUSED, 90), job(Status.RUNNING, 90)
    assert jobs_prune(older_than_days=30) == 3
    assert remaining(old_done, old_failed, old_cancelled) == [False, False, False]
    assert remaining(young, queued, held, running) == [True, True, True, True]
    assert not Attempt.objects.filter(job_id=old_done.pk).exists()
    assert not TaskLog.objects.filter(job_id=old_done.pk).exists()


def test_a_finished_parent_with_a_child_still_running_is_kept(job, acme):
    parent, child = job(Status.COMPLETED, 40), job(Status.RUNNING, 40)
    Job.objects.filter(pk=child.pk).update(parent=parent)
    assert jobs_prune(older_than_days=30) == 0
    Job.objects.filter(pk=child.pk).update(status=Status.COMPLETED, completed_at=timezone.now() - timedelta(days=40))
    assert jobs_prune(older_than_days=30) == 2


def test_pruning_works_in_batches_and_a_pass_is_bounded(job, acme):
    old = [job(Status.COMPLETED, 40) for _ in range(7)]
    assert jobs_prune(older_than_days=30, batch=2, max_batches=2) == 4
    assert sum(remaining(*old)) == 3
    assert jobs_prune(older_than_days=30, batch=2) == 3
    assert sum(remaining(*old)) == 0


def test_old_finished_executions_go_and_unfinished_ones_stay(acme, settings):
    schedule = schedule_create(team=acme, name="Nightly", handler="pulse.noop", cron="0 3 * * *", time_zone="UTC",
                               overlap_policy="allow")
    finished, unfinished, young = (schedule_trigger(schedule=schedule) for _ in range(3))
    long_ago = timezone.now() - timedelta(days=100)
    Execution.objects.filter(pk=finished.pk).update(fire_time=long_ago, finished_at=long_ago)
    Execution.objects.filter(pk=unfinished.pk).update(fire_time=long_ago, finished_at=None)
    assert executions_prune(older_than_days=90) == 1
    assert set(Execution.objects.values_list("pk", flat=True)) == {unfinished.pk, young.pk}


def test_old_events_go(acme):
    Event.objects.filter(team=acme).update(created_at=timezone.now() - timedelta(days=8))
    kept = Event.objects.create(team=acme, kind="job.updated", subject="x")
    assert events_prune(older_than_days=7) > 0
    assert list(Event.objects.filter(team=acme).values_list("pk", flat=True)) == [kept.pk]


def test_the_ticker_prunes_jobs_and_executions_every_minute():
    steps = {s.name: s for s in registered_steps()}
    assert steps["jobs.prune"].every == 60.0 and not steps["jobs.prune"].atomic
    assert steps["schedules.prune"].every == 60.0 and not steps["schedules.prune"].atomic
    assert steps["prune_events"].every == 60.0
