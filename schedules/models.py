from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs.models import Job
from pulse_site.ids import PublicIdField
from pulse_site.teams.models import Team


class ScheduleQuerySet(models.QuerySet["Schedule"]):
    def for_team(self, team: Team | int) -> ScheduleQuerySet:
        return self.filter(team=team)


class Schedule(models.Model):
    class Overlap(models.TextChoices):
        SKIP = "skip", "Skip while the last run is unfinished"
        QUEUE = "queue", "Submit anyway; runs when capacity allows"
        ALLOW = "allow", "Allow overlapping runs"

    class Misfire(models.TextChoices):
        SKIP = "skip", "Skip missed runs"
        ONCE = "once", "Run once for all missed runs"
        ALL = "all", "Run every missed run (capped)"

    public_id = PublicIdField(prefix="SP")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    handler = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)
    cron = models.CharField(max_length=200)
    time_zone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(default=True)
    overlap_policy = models.CharField(max_length=5, choices=Overlap.choices, default=Overlap.SKIP)
    misfire_policy = models.CharField(max_length=4, choices=Misfire.choices, default=Misfire.ONCE)
    # Money in micro-units (budgets.money); NULL: the handler's own estimate.
    estimate_override = models.BigIntegerField(null=True, blank=True)
    # The next slot to fire, in UTC; NULL while paused.
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    # Why the tick stopped firing it (empty when healthy); an edit that validates clears it.
    broken_reason = models.TextField(blank=True, default="")
    # Why it was paused when not by a person's own choice ("team retired"), shown on its page;
    # emptied when it is resumed.
    paused_reason = models.CharField(max_length=200, blank=True, default="", db_default="")
    created_by = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            # The tick: WHERE enabled AND broken_reason = '' AND next_run_at <= now ORDER BY next_run_at.
            models.Index(fields=["next_run_at"], condition=Q(enabled=True, broken_reason=""), name="schedule_due"),
            # Schedules list: WHERE team_id = ? ORDER BY name.
            models.Index(fields=["team", "name"], name="schedule_team_name"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.name}"

    @property
    def is_broken(self) -> bool:
        return bool(self.broken_reason)


class Execution(models.Model):
    class Trigger(models.TextChoices):
        CRON = "cron", "Cron"
        MANUAL = "manual", "Run now"

    class Status(models.TextChoices):
        # A fired execution mirrors its job's status; these have no job.
        SKIPPED = "skipped", "Skipped"
        ERROR = "error", "Error"
        # The job could never run (its estimate is above a budget limit), so none was made.
        FAILED = "failed", "Failed"

    public_id = PublicIdField(prefix="EX")
    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="executions")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    # The slot it fired for (UTC): the cron time, or the moment of a manual run.
    fire_time = models.DateTimeField()
    trigger = models.CharField(max_length=6, choices=Trigger.choices, default=Trigger.CRON)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Only for executions without a job (skipped, error); with a job, the job's status is the truth.
    outcome = models.CharField(max_length=7, choices=Status.choices, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    # Set once, when the follow-up step sees the job finished and emits the live event; `ended`
    # is the job's final status then, so the run still says how it ended once the job is deleted
    # (by hand, or by retention: jobs are kept 30 days, runs 90).
    finished_at = models.DateTimeField(null=True, blank=True)
    ended = models.CharField(max_length=9, blank=True, default="")
    duration_ms = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-fire_time", "-id"]
        constraints = [
            # Any number of tickers fire a (schedule, cron slot) once: the second insert fails.
            models.UniqueConstraint(fields=["schedule", "fire_time"], condition=Q(trigger="cron"),
                                    name="execution_unique_cron_slot"),
        ]
        indexes = [
            # History and keyset pages: WHERE schedule_id = ? [AND …] AND id < ? ORDER BY id DESC.
            models.Index(fields=["schedule", "-id"], name="execution_schedule_id"),
            # The admin's list in the model's order: ORDER BY fire_time DESC, id DESC LIMIT … (a
            # sort of every run without it).
            models.Index(fields=["-fire_time", "-id"], name="execution_fire_time"),
            # Follow-up: WHERE finished_at IS NULL AND job_id IS NOT NULL (small: unfinished runs only).
            models.Index(fields=["job"], condition=Q(finished_at__isnull=True, job__isnull=False),
                         name="execution_unfinished"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.fire_time:%Y-%m-%d %H:%M} UTC ({self.trigger})"

    @property
    def status(self) -> str:
        """The job's status while there is a job (or how it ended, once deleted); `skipped`,
        `failed` or `error` for a run that made none."""
        if self.job_id is not None and self.job is not None:
            return self.job.status
        return self.ended or self.outcome or self.Status.ERROR

    @property
    def status_label(self) -> str:
        return execution_status_label(self.status)

    @property
    def duration(self) -> int | None:
        """Milliseconds the job ran: from its start to its completion."""
        job = self.job if self.job_id is not None else None
        if job is not None and job.started_at and job.completed_at:
            return int((job.completed_at - job.started_at).total_seconds() * 1000)
        return self.duration_ms


def execution_status_label(status: str) -> str:
    """A run's status in the jobs list's words ("Held" for a paused job)."""
    labels = {**dict(Job.Status.choices), **dict(Execution.Status.choices)}
    return str(labels.get(status, status))
