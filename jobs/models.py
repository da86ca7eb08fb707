from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from jobs.error_codes import ErrorCode
from pulse_site.ids import PublicIdField
from pulse_site.teams.models import Team


class JobQuerySet(models.QuerySet["Job"]):
    def for_team(self, team: Team | int) -> JobQuerySet:
        return self.filter(team=team)


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PAUSED = "paused", "Held"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Source(models.TextChoices):
        API = "api", "API"
        DASHBOARD = "dashboard", "Dashboard"
        SCHEDULE = "schedule", "Schedule"
        RETRY = "retry", "Retry"
        CHILD = "child", "Child job"
        ADMIN = "admin", "Admin"

    FINAL = (Status.COMPLETED, Status.FAILED, Status.CANCELLED)
    ACTIVE = (Status.QUEUED, Status.PAUSED, Status.RUNNING)

    public_id = PublicIdField(prefix="JB")
    # No index of its own: every index below leads with team (job_team_id serves team_id = ?).
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="jobs", db_index=False)
    handler = models.CharField(max_length=100)
    handler_version = models.CharField(max_length=20, blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    priority = models.SmallIntegerField(default=0)

    progress_current = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(null=True, blank=True)
    progress_message = models.CharField(max_length=500, blank=True, default="")

    # Money in micro-units (budgets.money).
    cost_estimate = models.BigIntegerField(default=0)
    cost_actual = models.BigIntegerField(null=True, blank=True)
    pulse_state = models.JSONField(default=dict, blank=True)

    error_code = models.CharField(max_length=32, choices=ErrorCode.choices, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    error_retryable = models.BooleanField(null=True, blank=True)
    error_recoverable = models.BooleanField(null=True, blank=True)
    error_details = models.JSONField(default=dict, blank=True)

    # Indexed by job_parent below (not twice).
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children",
                               db_index=False)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    timeout_seconds = models.PositiveIntegerField(default=300)
    run_after = models.DateTimeField(null=True, blank=True)
    # When it was first due to start, if later than its creation (a start asked for later, a
    # schedule's run written ahead of its slot; run_after is then a retry's time). Its wait is
    # from here, or from its creation, to its first start.
    due_at = models.DateTimeField(null=True, blank=True)
    # The latest time it may first be handed over, for a schedule's run written ahead of its slot
    # (its slot plus the misfire grace): one still waiting then missed its slot (no ticker ran to
    # hand it over), and the schedule's misfire policy decides it, as for any missed slot. Cleared
    # when a ticker sees its slot come (then it waits its turn however long), when it first reaches
    # a worker, and when a person resumes or retries it.
    start_by = models.DateTimeField(null=True, blank=True)
    # When the job was handed to django-q2; NULL while it waits in Pulse's own backlog.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=100, blank=True, default="")

    hold_reasons = models.JSONField(default=list, blank=True)
    resume_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Who or what asked for the cancel ("alice", "token ci", "admin root", "parent cancelled",
    # "schedule SP_…: its slot was missed …"): the job's page and the API say it for as long as
    # the job is kept (its events go sooner). Cleared by a retry. db_default: the processes of the
    # release before, still running while a deploy goes machine by machine, insert jobs without it.
    cancelled_by = models.CharField(max_length=200, blank=True, default="", db_default="")

    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    request_hash = models.CharField(max_length=64, blank=True, default="")
    created_by = models.CharField(max_length=150, blank=True, default="")
    # The public id of what submitted the job when it was not a person or a token: the schedule
    # (SP_…) for scheduled runs. Jobs never import schedules; this is how their lists filter by one.
    origin = models.CharField(max_length=29, blank=True, default="")

    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="job_unique_idempotency_key",
            ),
            models.CheckConstraint(condition=Q(priority__gte=-100) & Q(priority__lte=100), name="job_priority_range"),
        ]
        indexes = [
            # Jobs list, newest first with keyset pagination: WHERE team_id = ? [AND status = ?] AND id < ? ORDER BY id DESC.
            models.Index(fields=["team", "-id"], name="job_team_id"),
            models.Index(fields=["team", "status", "-id"], name="job_team_status_id"),
            models.Index(fields=["team", "handler", "-id"], name="job_team_handler_id"),
            # Jobs list filtered by handler and status (the failed jobs of one handler): WHERE team_id = ?
            # AND handler = ? AND status = ? ORDER BY id DESC. Without it PostgreSQL guessed the pair
            # common and walked the primary key backwards: 1.7 s through a million rows when it matched none.
            models.Index(fields=["team", "handler", "status", "-id"], name="job_team_handler_status_id"),
            # The admin's error code filter, team by team: WHERE team_id IN (…) AND error_code = ? AND
            # error_code <> '' ORDER BY id DESC. Only the jobs that ended with a code are in it (a
            # tenth); without it a code no job ended with read every job, 0.4 s at a million.
            models.Index(fields=["team", "error_code", "-id"], condition=~Q(error_code=""),
                         name="job_team_error_code_id"),
            # The admin's source filter, team by team: WHERE team_id IN (…) AND source = ? ORDER BY id
            # DESC. A source no job came from read every job, 0.3 s at a million. A job's source is
            # set once, so it is written at the insert only (updates stay HOT).
            models.Index(fields=["team", "source", "-id"], name="job_team_source_id"),
            # Dispatch: the backlog not yet handed over, WHERE status = 'queued' AND dispatched_at IS NULL.
            models.Index(
                fields=["team", "-priority", "id"],
                condition=Q(status="queued", dispatched_at__isnull=True),
                name="job_backlog",
            ),
            # The ticker's wake at the next start time: MIN(run_after) WHERE status = 'queued' AND
            # dispatched_at IS NULL AND run_after > now (a big backlog due now is not read).
            models.Index(
                fields=["run_after"],
                condition=Q(status="queued", dispatched_at__isnull=True, run_after__isnull=False),
                name="job_waiting_start",
            ),
            # Schedules' staged runs, missed (start_by < now) or whose slot a ticker saw come
            # (start_by >= now AND run_after <= now), WHERE status = 'queued' AND dispatched_at IS
            # NULL: a handful of rows, the runs staged within the next minute.
            models.Index(
                fields=["start_by"],
                condition=Q(status="queued", dispatched_at__isnull=True, start_by__isnull=False),
                name="job_start_by",
            ),
            # In flight (handed over, not finished) and rescue: WHERE status IN ('queued','running') AND dispatched_at ...
            models.Index(fields=["status", "dispatched_at"], name="job_status_dispatched"),
            # Rescue: WHERE status = 'running' AND lease_expires_at < now.
            models.Index(fields=["lease_expires_at"], condition=Q(status="running"), name="job_running_lease"),
            # Jobs list filtered by schedule: WHERE team_id = ? AND origin = ? ORDER BY id DESC.
            models.Index(fields=["team", "origin", "-id"], name="job_team_origin_id"),
            # Overview: jobs finished per minute in the last hour and the wait/run sample of the last
            # day, WHERE team_id = ? AND completed_at >= ? [ORDER BY completed_at DESC].
            models.Index(fields=["team", "completed_at"], name="job_team_completed"),
            # Children of a parent (cancel cascades, detail page).
            models.Index(fields=["parent"], name="job_parent"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.handler} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL


class Attempt(models.Model):
    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        RETRYING = "retrying", "Failed, will retry"
        CANCELLED = "cancelled", "Cancelled"
        WORKER_LOST = "worker_lost", "Worker lost"
        INTERRUPTED = "interrupted", "Interrupted (worker stopped)"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempt_set")
    number = models.PositiveIntegerField()
    worker = models.CharField(max_length=100, blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, default=Outcome.RUNNING)
    error_code = models.CharField(max_length=32, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    cost = models.BigIntegerField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [
            # One row per try: a second delivery cannot record the same attempt twice.
            models.UniqueConstraint(fields=["job", "number"], name="attempt_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.job.public_id} #{self.number} {self.outcome}"

    @property
    def duration_ms(self) -> int | None:
        if self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)


class TaskLog(models.Model):
    class Level(models.TextChoices):
        DEBUG = "debug", "Debug"
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="logs")
    attempt = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=100, blank=True, default="")
    task = models.CharField(max_length=100, blank=True, default="")
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Job detail and logs API: WHERE job_id = ? [AND stage = ?] ORDER BY id.
            models.Index(fields=["job", "stage", "id"], name="tasklog_job_stage"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} [{self.stage}/{self.task}] {self.message[:40]}"


class JobStat(models.Model):
    """Finished jobs per team, handler and hour: stats and charts without counting the jobs table."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    handler = models.CharField(max_length=100)
    hour = models.DateTimeField()
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    run_ms = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "handler", "hour"], name="jobstat_unique_bucket"),
        ]
        indexes = [
            # Overview charts: WHERE team_id = ? AND hour >= ?.
            models.Index(fields=["team", "hour"], name="jobstat_team_hour"),
        ]


class WorkerBeat(models.Model):
    """Each worker process says it is alive (jobs.beats); 'workers active vs total' reads these rows.

    A row not seen for a few beats is a worker that is gone; the ticker prunes old ones.
    """

    name = models.CharField(max_length=100, primary_key=True)
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now)
    busy_job = models.CharField(max_length=29, blank=True, default="")
    rss_bytes = models.BigIntegerField(default=0)
    # The django-q2 cluster the worker belongs to (host:pid of its sentinel) and when that
    # started: a worker is recycled every PULSE_WORKER_RECYCLE jobs, the cluster stays up.
    cluster = models.CharField(max_length=100, blank=True, default="")
    cluster_started_at = models.DateTimeField(null=True, blank=True)


class QueuePause(models.Model):
    """A pause of the queue: nothing new starts while one is in force (running jobs finish).

    A team admin pauses their team's queue; an operator pauses every team's (global) or one
    handler everywhere. Ending a pause stamps `ended_at`; the rows stay as the history.
    """

    class Scope(models.TextChoices):
        TEAM = "team", "One team"
        HANDLER = "handler", "One handler, every team"
        GLOBAL = "global", "Every team"

    public_id = PublicIdField(prefix="QP")
    scope = models.CharField(max_length=8, choices=Scope.choices)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="queue_pauses")
    handler = models.CharField(max_length=100, blank=True, default="")
    reason = models.CharField(max_length=500)
    paused_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(scope="team", team__isnull=False, handler="")
                           | Q(scope="handler", team__isnull=True) & ~Q(handler="")
                           | Q(scope="global", team__isnull=True, handler="")),
                name="queuepause_scope_fields",
            ),
            # At most one pause in force per target: pausing twice is a conflict, not two rows.
            models.UniqueConstraint(fields=["team"], condition=Q(scope="team", ended_at__isnull=True),
                                    name="queuepause_one_per_team"),
            models.UniqueConstraint(fields=["handler"], condition=Q(scope="handler", ended_at__isnull=True),
                                    name="queuepause_one_per_handler"),
            models.UniqueConstraint(fields=["scope"], condition=Q(scope="global", ended_at__isnull=True),
                                    name="queuepause_one_global"),
        ]
        indexes = [
            # Admission and the banner: WHERE ended_at IS NULL (a handful of rows at most).
            models.Index(fields=["scope"], condition=Q(ended_at__isnull=True), name="queuepause_in_force"),
        ]

    def __str__(self) -> str:
        target = {"team": str(self.team), "handler": self.handler, "global": "every team"}[self.scope]
        return f"{self.public_id} pause of {target}"

    @property
    def in_force(self) -> bool:
        return self.ended_at is None
