"""Retention of finished jobs: past its team's job retention (Team.job_retention_days, or
PULSE_JOB_RETENTION_DAYS when the team has none) a completed, failed or cancelled job is deleted
with its attempts and logs, team by team, in small batches.

Nothing queued, held (paused) or running is ever touched, nor a finished parent whose children are
still at work. Each batch is its own short transaction that row-locks only the jobs it deletes
(SKIP LOCKED: a job another process holds is left for the next pass), so workers and the API
never wait on the pruner; the per-team query is served by the (team, completed_at) index.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from jobs.models import Attempt, Job, TaskLog
from pulse_site.teams.models import Team

Status = Job.Status
FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
PRUNE_BATCH = 500
# One ticker pass deletes at most this many batches, so the step never stalls the other steps.
MAX_BATCHES_PER_PASS = 40


def _prune_batch(*, team_id: int, cutoff: object, size: int) -> int:
    with transaction.atomic():
        ids = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(team_id=team_id, status__in=FINAL, completed_at__lt=cutoff)
            .exclude(children__status__in=[Status.QUEUED, Status.PAUSED, Status.RUNNING])
            .order_by("completed_at")
            .values_list("pk", flat=True)[:size]
        )
        if not ids:
            return 0
        TaskLog.objects.filter(job_id__in=ids).delete()
        Attempt.objects.filter(job_id__in=ids).delete()
        Job.objects.filter(pk__in=ids).delete()
        return len(ids)


def jobs_prune(*, older_than_days: int, batch: int = PRUNE_BATCH, max_batches: int = MAX_BATCHES_PER_PASS) -> int:
    """Delete finished jobs past each team's retention (`older_than_days` for a team with no
    setting of its own); the number of jobs deleted."""
    now = timezone.now()
    deleted = batches = 0
    for team_id, days in Team.objects.order_by("pk").values_list("pk", "job_retention_days"):
        cutoff = now - timedelta(days=days or older_than_days)
        while batches < max_batches:
            count = _prune_batch(team_id=team_id, cutoff=cutoff, size=batch)
            batches += 1
            deleted += count
            if count < batch:
                break
    return deleted
