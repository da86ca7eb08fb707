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
        HELD_LONG = "held_long", "A job was held longer than N minutes"

    public_id = PublicIdField(prefix="NR")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notification_rules")
    target = models.ForeignKey(Target, on_delete=models.CASCADE, related_name="rules")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # Only these handlers' jobs (empty: every handler).
    handlers = models.JSONField(default=list, blank=True)
    # job_failed: only when no retry follows (the last attempt); else every failed attempt.
    final_only = models.BooleanField(default=True)
    # job_failed: only failures with these error codes (empty: any code).
    error_codes = models.JSONField(default=list, blank=True)
    # held_long: how many minutes a hold lasts before the target hears of it (NULL for other kinds).
    minutes = models.PositiveIntegerField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            # A held_long rule says how long; no other kind has a duration.
            models.CheckConstraint(
                condition=(Q(kind="held_long", minutes__gte=1) | (~Q(kind="held_long") & Q(minutes__isnull=True))),
                name="notification_rule_minutes_for_held_long",
            ),
        ]
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


class HoldTimer(models.Model):
    """One hold that a held_long rule is timing: begun by a job.paused event, ended (deleted) by
    the job's next state event; if the job is still held at `due_at`, the target hears once."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="hold_timers")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    job_id = models.CharField(max_length=29)
    handler = models.CharField(max_length=100)
    # The job.paused event that began the hold, and its time.
    event_id = models.BigIntegerField()
    held_since = models.DateTimeField()
    due_at = models.DateTimeField()

    class Meta:
        constraints = [
            # One timer per rule and job: a job is in at most one hold at a time.
            models.UniqueConstraint(fields=["rule", "job_id"], name="notification_hold_rule_job"),
        ]
        indexes = [
            # The due step: WHERE due_at <= now.
            models.Index(fields=["due_at"], name="notification_hold_due"),
            # The end of a hold: WHERE team_id = ? AND job_id = ?.
            models.Index(fields=["team", "job_id"], name="notification_hold_job"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} held since {self.held_since:%Y-%m-%d %H:%M} ({self.rule_id})"
