from __future__ import annotations

import secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone

from pulse_site.ids import PublicIdField
from pulse_site.teams.models import Team


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class Target(models.Model):
    """Where a team's notifications go: an email address or a webhook URL (signed with `secret`)."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    public_id = PublicIdField(prefix="NT")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notification_targets")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    address = models.CharField(max_length=500)
    secret = models.CharField(max_length=64, default=new_secret)
    enabled = models.BooleanField(default=True)
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="notification_target_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class Rule(models.Model):
    """What a target hears of. Matched against the event outbox by the `notifications.match` step."""

    class Kind(models.TextChoices):
        JOB_FAILED = "job_failed", "A job failed"
        BUDGET_THRESHOLD = "budget_threshold", "A budget alert threshold was crossed"
        OVERRUN = "overrun", "A job cost more than its estimate"
        SCHEDULE_BROKEN = "schedule_broken", "A schedule broke (it stopped firing)"

    public_id = PublicIdField(prefix="NR")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notification_rules")
    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Only these handlers' jobs (empty: every handler).
    handlers = models.JSONField(default=list, blank=True)
    # job_failed: only when no retry follows (the last attempt); else every failed attempt.
    final_only = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The match step: WHERE team_id = ? AND kind IN (...).
            models.Index(fields=["team", "kind"], name="notification_rule_team_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} → {self.target_id}"


class JobWatch(models.Model):
    """A job submitted with `notify`: its target hears once when the job ends (001's origin channel)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    job_id = models.CharField(max_length=29)
    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="watches")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The match step, on a job's final event: WHERE team_id = ? AND job_id = ?.
            models.Index(fields=["team", "job_id"], name="notification_watch_job"),
        ]
