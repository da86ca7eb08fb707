"""Retention of schedule history: past its team's execution retention (Team.execution_retention_days,
or PULSE_EXECUTION_RETENTION_DAYS when the team has none) a finished execution (or one that never
made a job) is deleted, team by team, in small batches of their own transactions.
An unfinished execution is kept whatever its age: the overlap policy and the follow-up need it."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from pulse_site.teams.models import Team
from schedules.models import Execution

PRUNE_BATCH = 1_000
MAX_BATCHES_PER_PASS = 40


def executions_prune(*, older_than_days: int, batch: int = PRUNE_BATCH,
                     max_batches: int = MAX_BATCHES_PER_PASS) -> int:
    """Delete finished executions past each team's retention (`older_than_days` for a team with no
    setting of its own); the number deleted."""
    now = timezone.now()
    deleted = batches = 0
    for team_id, days in Team.objects.order_by("pk").values_list("pk", "execution_retention_days"):
        cutoff = now - timedelta(days=days or older_than_days)
        while batches < max_batches:
            with transaction.atomic():
                # Served by the team_id foreign-key index; a team's history is small next to its jobs.
                ids = list(Execution.objects.filter(team_id=team_id, fire_time__lt=cutoff)
                           .filter(Q(finished_at__isnull=False) | Q(job__isnull=True))
                           .order_by("fire_time").values_list("pk", flat=True)[:batch])
                if ids:
                    Execution.objects.filter(pk__in=ids).delete()
            batches += 1
            deleted += len(ids)
            if len(ids) < batch:
                break
    return deleted
