"""Hourly rollups of finished jobs, so stats never count the jobs table."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from jobs.models import Job, JobStat


def stat_bump(job: Job, outcome: str, *, run_ms: int, count: int = 1) -> None:
    """Count `count` finished jobs (`completed`, `failed` or `cancelled`) of the team and handler of
    `job` in their hour's row; `run_ms` is their total run time."""
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    key = {"team_id": job.team_id, "handler": job.handler, "hour": hour}
    changes = {outcome: F(outcome) + count, "run_ms": F("run_ms") + run_ms}
    if JobStat.objects.filter(**key).update(**changes):
        return
    try:
        with transaction.atomic():
            JobStat.objects.create(**key, **{outcome: count}, run_ms=run_ms)
    except IntegrityError:
        # Another worker created the row between our update and insert.
        JobStat.objects.filter(**key).update(**changes)
