"""What a daemon job (@handler(daemon=True)) shows beyond a job: its restarts and uptime."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from jobs.handlers.registry import get_handler
from jobs.models import Attempt, Job
from pulse_site.errors import PulseError


def is_daemon(handler: str) -> bool:
    try:
        return get_handler(handler).daemon
    except PulseError:
        return False


def daemon_restarts(job: Job) -> int:
    """Starts after the first: each attempt is a start; a daemon waiting to start again has
    already been stopped `attempts` times, one that runs (or has ended) `attempts - 1`."""
    waiting = job.status in (Job.Status.QUEUED, Job.Status.PAUSED)
    return job.attempts if waiting else max(0, job.attempts - 1)


def daemon_state(job: Job) -> dict[str, Any] | None:
    """None for other handlers' jobs. A running daemon costs one lookup by the unique
    (job, number) key: the current attempt's start is its uptime."""
    if not is_daemon(job.handler):
        return None
    up_since = None
    if job.status == Job.Status.RUNNING and job.attempts:
        up_since = (Attempt.objects.filter(job_id=job.pk, number=job.attempts)
                    .values_list("started_at", flat=True).first())
    waiting = job.status == Job.Status.QUEUED and job.attempts > 0 and job.run_after is not None
    return {
        "restarts": daemon_restarts(job),
        "up_since": up_since.isoformat() if up_since else None,
        "uptime_seconds": max(0, int((timezone.now() - up_since).total_seconds())) if up_since else None,
        "restarting_at": job.run_after.isoformat() if waiting and job.run_after else None,
    }
