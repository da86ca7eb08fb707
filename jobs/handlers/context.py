"""What a handler gets: its payload and the calls that report back to Pulse."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from budgets.money import MAX_AMOUNT, parse_money, to_micros
from jobs.handlers.registry import with_defaults
from jobs.jsonsafe import json_safe, text_safe
from jobs.models import Job, TaskLog
from pulse_site.errors import ValidationError
from pulse_site.live.services import event_emit
from pulse_site.outage import discard_broken_connections, is_database_outage, retry_through_outage

if TYPE_CHECKING:
    from jobs.handlers.registry import Handler

MAX_LOG_MESSAGE = 10_000
LOG_PATIENCE_SECONDS = 60


class JobContext:
    """Passed to every handler call; one per attempt.

    Progress is throttled (at most one write every PULSE_PROGRESS_INTERVAL seconds; the last
    value always lands when the attempt ends); logs are written as they come.
    """

    def __init__(self, *, job: Job, handler: Handler, attempt: int) -> None:
        self.job_id = job.public_id
        # Filled in at submit; again here for a job submitted before a default was added.
        self.payload: dict[str, Any] = with_defaults(handler.schema, job.payload)
        self.attempt = attempt
        self.handler = handler
        self._pk = job.pk
        self._team_id = job.team_id
        self._cancel = threading.Event()
        self._cost_micros: int | None = None
        self._stage = ""
        self._task = ""
        self._pending_progress: tuple[int, int | None, str] | None = None
        self._last_progress_write = 0.0
        self._interval = settings.PULSE_PROGRESS_INTERVAL
        self._pid = os.getpid()
        self._ended = False

    # --- reporting --------------------------------------------------------------------------

    def progress(self, current: int, total: int | None = None, message: str = "") -> None:
        """`current` of `total` (whole numbers, 0 ≤ current ≤ total; a fraction is cut to its whole
        part). A value out of range or no number is the handler's mistake: ValueError naming it."""
        self._usable("progress")
        whole = _progress_number("current", current)
        most = None if total is None else _progress_number("total", total)
        if most is not None and whole > most:
            raise ValueError(f"ctx.progress: current ({whole}) is past total ({most})")
        self._pending_progress = (whole, most, text_safe(str(message))[:500])
        if time.monotonic() - self._last_progress_write >= self._interval:
            self.flush_progress()

    def flush_progress(self) -> None:
        if self._pending_progress is None:
            return
        pending = self._pending_progress
        current, total, message = pending
        self._pending_progress = None
        self._last_progress_write = time.monotonic()
        try:
            with transaction.atomic():
                updated = Job.objects.filter(pk=self._pk, status=Job.Status.RUNNING, attempts=self.attempt).update(
                    progress_current=current, progress_total=total, progress_message=message,
                    updated_at=timezone.now(),
                )
                if updated:
                    event_emit(team=self._team_id, kind="job.progress", subject=self.job_id,
                               payload={"current": current, "total": total, "message": message})
        except DatabaseError as exc:
            if not is_database_outage(exc):
                raise
            # Progress is advisory: the handler carries on through an outage and the newest
            # value is written once the database answers again.
            if self._pending_progress is None:
                self._pending_progress = pending
            discard_broken_connections()

    def log(self, message: str, *, stage: str | None = None, task: str | None = None, level: str = "info",
            **metadata: Any) -> None:
        self._usable("log")
        if level not in TaskLog.Level.values:
            level = TaskLog.Level.INFO
        text = text_safe(str(message))[:MAX_LOG_MESSAGE]
        stage = self._stage if stage is None else text_safe(str(stage))[:100]
        task = self._task if task is None else text_safe(str(task))[:100]
        # A value the JSON column refuses is kept as its repr(): a log line never fails the job.
        metadata = {key: json_safe(value) for key, value in metadata.items()}

        created_at = timezone.now()
        tries = 0

        def write() -> None:
            nonlocal tries
            tries += 1
            # A retry after a connection lost at COMMIT: the line may have landed (same job,
            # attempt, time and text); never write it twice.
            if tries > 1 and TaskLog.objects.filter(job_id=self._pk, attempt=self.attempt, created_at=created_at,
                                                    message=text).exists():
                return
            with transaction.atomic():
                row = TaskLog.objects.create(job_id=self._pk, attempt=self.attempt, stage=stage, task=task,
                                             level=level, message=text, metadata=metadata, created_at=created_at)
                event_emit(team=self._team_id, kind="job.log", subject=self.job_id,
                           payload={"id": row.pk, "stage": stage, "task": task, "level": level, "message": text,
                                    "attempt": self.attempt, "at": row.created_at.isoformat()})

        # A log line is not dropped in an outage: the handler waits for the database (a while).
        retry_through_outage(write, what=f"log of {self.job_id}", give_up_after=LOG_PATIENCE_SECONDS)

    @contextmanager
    def stage(self, name: str, task: str = "") -> Iterator[None]:
        """Group the log lines written inside the block under a stage (and task)."""
        previous = (self._stage, self._task)
        self._stage, self._task = text_safe(str(name))[:100], text_safe(str(task))[:100]
        try:
            yield
        finally:
            self._stage, self._task = previous

    def report_cost(self, amount: Decimal | str | int) -> None:
        """Add to this attempt's actual cost (may be called several times)."""
        self._usable("report_cost")
        micros = to_micros(parse_money(amount, field="ctx.report_cost", written=False))
        total = (self._cost_micros or 0) + micros
        if total > to_micros(MAX_AMOUNT):
            # The sum would not fit the ledger's column: the settle's write would fail, and the
            # job stay running until its lease's rescue ran the handler again.
            raise ValidationError.for_field(
                "ctx.report_cost",
                f"The costs reported by this attempt add up to more than {MAX_AMOUNT}, "
                "the most one attempt can be charged.")
        self._cost_micros = total

    @property
    def reported_cost_micros(self) -> int | None:
        return self._cost_micros

    def spawn(self, handler: str, payload: dict[str, Any], *, priority: int | None = None) -> str:
        """Submit a child job of the same team; returns its id. A job cancelled meanwhile starts
        no more work: the handler is stopped there (JobCancelled; the job ends cancelled)."""
        from jobs.error_codes import JobCancelled
        from jobs.services import job_submit
        from pulse_site.teams.services import team_check_takes_work

        self._usable("spawn")

        with transaction.atomic():
            # Before the parent's lock: a retirement takes the team's lock, then its jobs.
            team_check_takes_work(team=self._team_id)
            # Locked as job_cancel locks it: a cancel before this is seen here, and one after it
            # finds the child and cancels it with its parent.
            parent = Job.objects.select_for_update().filter(pk=self._pk).first()
            if (parent is None or parent.status != Job.Status.RUNNING or parent.attempts != self.attempt
                    or parent.cancel_requested):
                self.mark_cancelled()
                raise JobCancelled("Cancelled before it spawned its next job: no new work starts after a cancel.")
            child = job_submit(team=parent.team, handler=handler, payload=payload, source=Job.Source.CHILD,
                               parent=parent, priority=parent.priority if priority is None else priority).job
        return child.public_id

    def end(self) -> None:
        """The attempt is over (its handler returned or raised): the context takes nothing more."""
        self._ended = True

    def _usable(self, call: str) -> None:
        if os.getpid() != self._pid:
            # A forked child shares the worker's database connection: a query of its own would
            # interleave with the worker's on one socket.
            raise RuntimeError(f"ctx.{call} of {self.job_id}: called in a process the handler forked, which shares "
                               "the worker's database connection; report from the handler's own process")
        if self._ended:
            raise RuntimeError(f"ctx.{call} of {self.job_id}: attempt {self.attempt} has ended, so it takes nothing "
                               "more (a thread or process the handler left running? wait for it before returning)")

    # --- cancellation -----------------------------------------------------------------------

    def cancelled(self) -> bool:
        """True once someone asked to cancel this job; the handler should return soon after."""
        return self._cancel.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep, waking early on cancel. Returns True if cancelled."""
        return self._cancel.wait(max(0.0, seconds))

    def mark_cancelled(self) -> None:
        self._cancel.set()


# The jobs' progress columns are 64-bit.
MAX_PROGRESS = 2**63 - 1


def _progress_number(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"ctx.progress: {name} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"ctx.progress: {name} must be a finite number, not {value!r}")
    whole = int(value)
    if whole < 0:
        raise ValueError(f"ctx.progress: {name} must be 0 or more, not {value!r}")
    if whole > MAX_PROGRESS:
        raise ValueError(f"ctx.progress: {name} must be at most {MAX_PROGRESS}, not {value!r}")
    return whole
