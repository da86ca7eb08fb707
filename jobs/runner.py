"""One attempt of one job inside a worker: claim, admit, run the handler, settle.

django-q2 may deliver a task twice (a redelivery, a re-dispatch of a lost message), so every
state change here is a claim on the expected old state: the second delivery finds nothing to
claim and returns without running the handler.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.utils import timezone
from psycopg.pq import TransactionStatus

from budgets.models import BudgetPolicy
from budgets.services import (
    Decision,
    Locked,
    budget_admit,
    budget_admit_batched,
    budget_admit_many,
    budget_held_for_a_slot_before,
    budget_lock_teams,
    budget_settle,
    budget_settle_many,
)
from jobs import stopping
from jobs.dispatch import HARD_TIMEOUT_MARGIN, submit_lock
from jobs.error_codes import FLAGS, ErrorCode, JobCancelled, JobError, JobInterrupted, JobTimeout
from jobs.events import job_event, job_event_row
from jobs.gate import gate_reasons, paused_annotation, system_load_reason
from jobs.handlers.context import JobContext
from jobs.handlers.registry import Handler, find_handler
from jobs.jsonsafe import exception_text, json_safe, result_safe, text_safe, words
from jobs.models import Attempt, Job, QueuePause, TaskLog
from jobs.stats import stat_bump
from pulse_site import sqlbatch
from pulse_site.locks import transaction_lock
from pulse_site.live.models import Event
from pulse_site.outage import (
    discard_broken_connections,
    is_database_outage,
    retry_through_outage,
)
from pulse_site.teams.models import Team

log = logging.getLogger("pulse.jobs")
Status = Job.Status


def worker_name() -> str:
    # Forked worker processes inherit the module; the pid must be read at call time.
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Outcome:
    ok: bool
    result: Any = None
    code: str = ""
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    retryable: bool | None = None
    traceback: str = ""
    cost_micros: int | None = None
    run_ms: int = 0
    started_at: Any = None  # when the handler was called


def _lease_until() -> Any:
    return timezone.now() + timedelta(seconds=settings.PULSE_LEASE_SECONDS)


@dataclass
class _Rows:
    """Log lines and events of a settle-and-start transaction, written together before it commits
    (two INSERTs instead of one per row)."""

    logs: list[TaskLog] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def write(self) -> None:
        if self.logs:
            TaskLog.objects.bulk_create(self.logs)
        if self.events:
            Event.objects.bulk_create(self.events)


# Set while a settle-and-start transaction collects its rows: per thread (a context variable),
# so that a run_job in another thread of the process (the heartbeat's, a test's) writes its own.
_collecting: ContextVar[_Rows | None] = ContextVar("pulse_collecting", default=None)


def _log_row(job: Job, attempt: int, message: str, level: str = "info", **metadata: Any) -> TaskLog:
    return TaskLog(job=job, attempt=attempt, stage="", task="", level=level, message=message, metadata=metadata)


def _system_log(job: Job, attempt: int, message: str, level: str = "info", **metadata: Any) -> None:
    row = _log_row(job, attempt, message, level, **metadata)
    collecting = _collecting.get()
    if collecting is not None:
        collecting.logs.append(row)
    else:
        row.save(force_insert=True)


def _job_event(job: Job, kind: str, **extra: Any) -> None:
    collecting = _collecting.get()
    if collecting is not None:
        collecting.events.append(job_event_row(job, kind, **extra))
    else:
        job_event(job, kind, **extra)


def _settle_event(job: Job, kind: str, outcome: Outcome) -> None:
    # A handler stopped by force after its cancel: the event says so ("cancelled: Stopped 30 s …").
    _job_event(job, kind, **({"stopped": outcome.message} if kind == "cancelled" and outcome.message else {}))


# --- claim -------------------------------------------------------------------------------------


def _hold(job: Job, reasons: list[dict[str, Any]], resume_at: Any) -> None:
    Job.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        status=Status.PAUSED, hold_reasons=reasons, resume_at=resume_at, dispatched_at=None, start_by=None,
        updated_at=timezone.now()
    )
    job.refresh_from_db()
    _job_event(job, "paused")


def _fail_unrunnable(job: Job, message: str) -> None:
    now = timezone.now()
    Job.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        status=Status.FAILED, error_code=ErrorCode.VALIDATION_ERROR, error_message=message, error_retryable=False,
        error_recoverable=False, completed_at=now, dispatched_at=None, updated_at=now,
    )
    job.refresh_from_db()
    _system_log(job, job.attempts, message, level="error")
    stat_bump(job, "failed", run_ms=0)
    _job_event(job, "failed")


def _defer_for_load(job: Job, reason: dict[str, Any], now: Any) -> None:
    # Still queued, not held: back to the backlog with the reason shown, handed over again after
    # a short wait (to this worker if it has recovered, or to another).
    retry_at = now + timedelta(seconds=settings.PULSE_ADMIT_LOAD_RETRY_SECONDS)
    Job.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        dispatched_at=None, start_by=None, run_after=retry_at,
        hold_reasons=[{**reason, "resume_at": retry_at.isoformat()}], updated_at=now,
    )
    job.refresh_from_db()
    _job_event(job, "deferred")


# A job whose handler this worker does not have goes back to wait this long for a worker that has
# it (a rolling deploy: the web process that took it has the handler, this machine not yet), for
# up to HANDLER_MISSING_PATIENCE from the first worker that sent it back; then it fails.
HANDLER_MISSING_RETRY = timedelta(seconds=5)
HANDLER_MISSING_PATIENCE = timedelta(minutes=10)


def _handler_missing(job: Job, now: Any) -> None:
    earlier = next((r for r in job.hold_reasons if r.get("kind") == "handler_missing"), None)
    since = datetime.fromisoformat(earlier["since"]) if earlier else now
    where = (f"The handler '{job.handler}' is not registered on the worker {worker_name()}, whose "
             f"PULSE_HANDLER_MODULES are {', '.join(settings.PULSE_HANDLER_MODULES)}")
    if now - since >= HANDLER_MISSING_PATIENCE:
        message = (f"{where}, nor on any worker that took the job in {_minutes(now - since)}: every worker "
                   "needs the handler modules of the web processes. Retry the job once they have them.")
        log.warning("job %s failed: %s", job.public_id, message)
        _fail_unrunnable(job, message)
        return
    retry_at = now + HANDLER_MISSING_RETRY
    message = f"{where} (a machine not yet deployed?): the job waits for a worker that has it."
    log.warning("job %s sent back: %s", job.public_id, message)
    Job.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        dispatched_at=None, start_by=None, run_after=retry_at, updated_at=now,
        hold_reasons=[{"kind": "handler_missing", "worker": worker_name(), "since": since.isoformat(),
                       "resume_at": retry_at.isoformat(), "message": message}],
    )
    job.refresh_from_db()
    _job_event(job, "deferred")


def _minutes(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _fail_over_budget(job: Job, reasons: list[dict[str, Any]]) -> None:
    now = timezone.now()
    message = " ".join(r["message"] for r in reasons if r["kind"] == "budget")
    Job.objects.filter(pk=job.pk, status=Status.QUEUED).update(
        status=Status.FAILED, error_code=ErrorCode.BUDGET_EXCEEDED, error_message=message, error_retryable=False,
        error_recoverable=True, error_details={"reasons": reasons}, completed_at=now, dispatched_at=None,
        updated_at=now,
    )
    job.refresh_from_db()
    _system_log(job, job.attempts, f"Not started: over budget and the team's policy is to fail. {message}",
                level="error")
    stat_bump(job, "failed", run_ms=0)
    _job_event(job, "failed")


@transaction.atomic
def claim(job_id: str) -> tuple[Job, Handler] | None:
    """Admit and start the job, or hold it, or do nothing if it is not ours to run."""
    if connection.vendor == "postgresql":
        # A job may be sent before its submit commits (jobs.services.job_submit): wait for that.
        transaction_lock(submit_lock(job_id))
        started = _claim_usual_case(job_id)
        if started is not None:
            return started
    return _claim(job_id)


def _claim(job_id: str) -> tuple[Job, Handler] | None:
    """`claim` through the ORM: every case, on every database."""
    # The pause check rides on the locking read: one statement fewer for every start.
    job = (Job.objects.select_for_update(of=("self",)).annotate(paused=paused_annotation())
           .filter(public_id=job_id).first())
    if job is None or job.status != Status.QUEUED:
        return None  # a duplicate delivery, or cancelled / held / already running
    now = timezone.now()
    spec = _claim_checks(job, now, paused=job.paused)
    if spec is None or not _claim_admit(job, spec, now):
        return None
    return job, spec


def _due_later(job: Job, now: Any) -> bool:
    return job.run_after is not None and job.run_after > now


def _claim_checks(job: Job, now: Any, *, paused: bool | None = None) -> Handler | None:
    """The checks before the budget gate, on a locked queued job: its handler, its retry time,
    the machine's load and the jobs' own gate (`paused`: as read with the job, or None). None if
    the job is not to start now (it was held, failed or sent back to the backlog)."""
    if _due_later(job, now):
        # Delivered before its retry time: back to the backlog, the dispatcher hands it over later.
        Job.objects.filter(pk=job.pk, status=Status.QUEUED).update(dispatched_at=None)
        return None
    spec = find_handler(job.handler)
    if spec is None:
        _handler_missing(job, now)
        return None
    overloaded = system_load_reason()
    if overloaded is not None:
        _defer_for_load(job, overloaded, now)
        return None
    held_by = gate_reasons(job=job, spec=spec, lock=True, paused=paused)
    if held_by:
        _hold(job, held_by, None)
        return None
    return spec


def _claim_admit(job: Job, spec: Handler, now: Any, *, freed_slot: bool = False, locked: Locked | None = None
                 ) -> bool:
    """The budget gate, then the start: running with a lease, its attempt, log line and event.
    `freed_slot`: this transaction settled another job of the team whose slot is handed on;
    `locked`: that settle's lock of its team's policy."""
    decision = budget_admit(job=job, freed_slot=freed_slot, locked=locked) if spec.metered else _unmetered()
    if decision.fail:
        _fail_over_budget(job, decision.reasons)
        return False
    if not decision.allowed:
        _hold(job, decision.reasons, decision.resume_at)
        return False
    changes, attempt = _start(job, decision)
    # The row is locked by us since the SELECT: it holds exactly what we read plus these
    # changes, so no refresh_from_db (one statement per job saved).
    claimed = Job.objects.filter(pk=job.pk, status=Status.QUEUED, attempts=attempt.number - 1).update(**changes)
    if not claimed:  # pragma: no cover - the row is locked by us: nothing else can move it
        raise RuntimeError(f"the locked job {job.public_id} moved under its claim")
    attempt.save(force_insert=True)
    _system_log(job, attempt.number, _started_message(job, attempt))
    _job_event(job, "started")
    return True


def _unmetered() -> Decision:
    """The gate's answer for Pulse's own work (Handler.metered): it starts, and the team's budget
    (its money, its rate, its running slots) is neither asked nor moved."""
    return Decision(allowed=True)


def _start(job: Job, decision: Any, now: Any = None) -> tuple[dict[str, Any], Attempt]:
    """The start of the job's next attempt once the gate let it in: its changes, applied to `job`
    and returned for the caller to write, and its attempt row (unsaved). `now`: the start, by
    default the current time (the gate's `now` was read before the wait for the team's policy
    lock, so under contention it could precede the settle whose slot this job took)."""
    now = now or timezone.now()
    number = job.attempts + 1
    lease = _lease_until()
    name = worker_name()
    changes = dict(status=Status.RUNNING, attempts=number, started_at=job.started_at or now, lease_expires_at=lease,
                   worker=name, pulse_state=decision.pulse_state, hold_reasons=[], resume_at=None, updated_at=now,
                   dispatched_at=job.dispatched_at or now)
    for field_name, value in changes.items():
        setattr(job, field_name, value)
    return changes, Attempt(job=job, number=number, worker=name, started_at=now, lease_expires_at=lease)


def _started_message(job: Job, attempt: Attempt) -> str:
    return f"Attempt {attempt.number} of {job.max_attempts} started on {attempt.worker}"


@cache
def _usual_case_sql() -> str:
    tables = {model: model._meta.db_table for model in (Job, BudgetPolicy, Team, QueuePause)}
    # Any pause in force at all sends the claim the usual way, which applies the pause rules.
    rows = ", ".join(sqlbatch.columns(model, alias) for model, alias in ((Job, "j"), (BudgetPolicy, "p"), (Team, "t")))
    return (
        f"SELECT {rows}, "  # nosec B608
        f"EXISTS (SELECT 1 FROM {tables[QueuePause]} q WHERE q.ended_at IS NULL) "
        f"FROM {tables[Job]} j JOIN {tables[BudgetPolicy]} p ON p.team_id = j.team_id "
        f"JOIN {tables[Team]} t ON t.id = j.team_id "
        # The job's row, then its team's policy row: the order of every claim and settle. The
        # team row is read, not locked (inserts naming the team take KEY SHARE on it).
        "WHERE j.public_id = %s FOR UPDATE OF j, p"
    )


def _claim_usual_case(job_id: str) -> tuple[Job, Handler] | None:
    """The claim of a job that starts at once with nothing to decide, on PostgreSQL, in three
    statements: the job, its team's policy and team read (the first two locked) in one; the
    budget state in one (budgets.budget_admit_batched); the job's start, its attempt, log line and
    event, the reservations, the start and the running slot written in one. None: the usual claim
    decides, as for anything else: a job not queued (or not there), one due later, a pause in
    force anywhere, an unknown, exclusive or daemon handler, a loaded machine, or a limit in the
    way. The gate's decision is the same `_evaluate` as the usual path's, on the same state."""
    with connection.cursor() as cursor:
        cursor.execute(_usual_case_sql(), [job_id])
        row = cursor.fetchone()
    if row is None:
        return None
    job = sqlbatch.from_row(Job, row)
    policy = sqlbatch.from_row(BudgetPolicy, row, sqlbatch.width(Job))
    team = sqlbatch.from_row(Team, row, sqlbatch.width(Job) + sqlbatch.width(BudgetPolicy))
    if job.status != Status.QUEUED or row[-1] or _due_later(job, timezone.now()):
        return None
    spec = find_handler(job.handler)
    if spec is None or spec.exclusive or spec.daemon or not spec.metered or system_load_reason() is not None:
        return None
    batch = sqlbatch.WriteBatch()
    decision = budget_admit_batched(job=job, policy=policy, team=team, batch=batch)
    if decision is None:
        return None
    changes, attempt = _start(job, decision)
    claimed = batch.update(Job, [job.pk], where={"status": Status.QUEUED, "attempts": attempt.number - 1},
                           values=changes)
    batch.insert([attempt])
    batch.insert([_log_row(job, attempt.number, _started_message(job, attempt))])
    batch.insert([job_event_row(job, "started")])
    if batch.flush()[claimed] != 1:  # pragma: no cover - the row is locked by us: nothing else can move it
        raise RuntimeError(f"the locked job {job.public_id} moved under its claim")
    return job, spec


# --- run ---------------------------------------------------------------------------------------


# How often hard_timeout's alarm comes again while a handler runs past its end.
ALARM_REPEAT_SECONDS = 1.0


@contextmanager
def hard_timeout(seconds: int, *, cancel: Heartbeat | None = None) -> Iterator[None]:
    """Raise JobTimeout in the handler after `seconds` (0: never); JobInterrupted once the worker
    is stopping and its stop timeout has passed (jobs.stopping: a stop requested while the handler
    runs re-arms the alarm); JobCancelled once its job was cancelled PULSE_CANCEL_GRACE_SECONDS ago
    (`cancel`: the heartbeat that sees the cancel and re-arms the alarm). The first due wins, and
    comes again every ALARM_REPEAT_SECONDS until the handler has ended. Only in the main thread
    (signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    started = time.monotonic()
    deadline = started + seconds if seconds else None
    handler_running = threading.Event()  # cleared once the handler is done: a late alarm raises nothing
    handler_running.set()

    def ends() -> list[tuple[float, str]]:
        forced = cancel.force_stop_at if cancel is not None else None
        return [(end, kind) for end, kind in ((deadline, "timeout"), (stopping.stop_at(), "stop"), (forced, "cancel"))
                if end is not None]

    def arm() -> None:
        if pending := ends():
            signal.setitimer(signal.ITIMER_REAL, max(0.01, min(pending)[0] - time.monotonic()))

    def expire(signum: int, frame: Any) -> None:
        if not handler_running.is_set():
            return
        now = time.monotonic()
        due = [(end, kind) for end, kind in ends() if now >= end - 0.01]
        if not due:
            arm()  # early: not due yet
            return
        kind = min(due)[1]
        # The handler may be waiting for a query, in a transaction of its own even, whose end
        # would close the connection and leave the query running in the server with its locks.
        _cancel_queries_in_flight()
        # Again while the handler runs on: a catch-all of its own may take this one, or an error of
        # the commit it lands in may take its place and be caught as any other (_call).
        signal.setitimer(signal.ITIMER_REAL, ALARM_REPEAT_SECONDS)
        if kind == "stop":
            raise JobInterrupted(f"The worker was stopped and the handler ran past the stop timeout of "
                                 f"{settings.PULSE_STOP_TIMEOUT:g} s.")
        if kind == "cancel":
            raise JobCancelled(f"Stopped {settings.PULSE_CANCEL_GRACE_SECONDS:g} s after the cancel: the handler "
                               "had not returned.")
        raise JobTimeout(f"The handler ran longer than its timeout of {seconds} s.")

    previous = signal.signal(signal.SIGALRM, expire)
    outer_remaining = signal.alarm(0)
    stopping.set_rearm(arm)
    if cancel is not None:
        cancel.rearm = arm
    arm()
    try:
        yield
    finally:
        handler_running.clear()
        stopping.set_rearm(None)
        if cancel is not None:
            with cancel.rearm_lock:  # a re-arm from the heartbeat is over, or will not come
                cancel.rearm = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_remaining:
            # Give back django-q2's own backstop alarm, less the time we used.
            signal.alarm(max(1, outer_remaining - int(time.monotonic() - started)))


class Heartbeat(threading.Thread):
    """Renews the lease while the handler runs and tells the handler when it was cancelled; a
    handler still running PULSE_CANCEL_GRACE_SECONDS later is stopped (hard_timeout)."""

    def __init__(self, *, job: Job, attempt: int, context: JobContext,
                 pending: list[tuple[int, int]] | None = None) -> None:
        super().__init__(name=f"heartbeat-{job.public_id}", daemon=True)
        self.job_pk = job.pk
        self.attempt = attempt
        # The other jobs of the same batch (waiting for their turn, or run and waiting to settle
        # with the batch): their leases are renewed with this one's, so a long run here does not
        # get them rescued.
        self.pending = pending or []
        self.context = context
        self.stop_event = threading.Event()
        # time.monotonic() at which a cancelled handler is stopped; set once, by the first beat that
        # sees the cancel. `rearm`: hard_timeout's, to bring its alarm forward (setitimer is
        # process-wide, so a thread may set it; the signal is taken in the main thread), under
        # `rearm_lock` so that it never runs after hard_timeout has put its alarm away.
        self.force_stop_at: float | None = None
        self.rearm: Callable[[], None] | None = None
        self.rearm_lock = threading.Lock()

    def run(self) -> None:
        renew_every = max(1.0, settings.PULSE_LEASE_SECONDS / 3)
        last_renewal = time.monotonic()
        failing = False
        try:
            while not self.stop_event.wait(settings.PULSE_CANCEL_POLL_SECONDS):
                try:
                    self._beat(renew=time.monotonic() - last_renewal >= renew_every)
                    failing = False
                except Exception as exc:
                    if not (isinstance(exc, DatabaseError) and is_database_outage(exc)):
                        log.exception("heartbeat of job %s failed", self.job_pk)
                    elif not failing:
                        log.warning("heartbeat of job %s: database unavailable (%s)", self.job_pk, exc)
                    failing = True
                    # Reconnect on the next beat instead of failing on a dead socket for ever.
                    discard_broken_connections()
                    continue
                if time.monotonic() - last_renewal >= renew_every:
                    last_renewal = time.monotonic()
        finally:
            connection.close()

    def _beat(self, *, renew: bool) -> None:
        mine = Job.objects.filter(pk=self.job_pk, status=Status.RUNNING, attempts=self.attempt)
        if renew:
            lease = _lease_until()
            if mine.update(lease_expires_at=lease):
                Attempt.objects.filter(job_id=self.job_pk, number=self.attempt).update(lease_expires_at=lease)
            for pk, number in self.pending:
                if Job.objects.filter(pk=pk, status=Status.RUNNING, attempts=number).update(lease_expires_at=lease):
                    Attempt.objects.filter(job_id=pk, number=number).update(lease_expires_at=lease)
        state = mine.values_list("cancel_requested", flat=True).first()
        if state is None or state:
            # Cancelled, or the attempt was taken from us (rescued): stop the handler.
            self.context.mark_cancelled()
        if state and self.force_stop_at is None and settings.PULSE_CANCEL_GRACE_SECONDS:
            self.force_stop_at = time.monotonic() + settings.PULSE_CANCEL_GRACE_SECONDS
            with self.rearm_lock:
                if self.rearm is not None:
                    self.rearm()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


def execute(job: Job, spec: Handler, *, pending: list[tuple[int, int]] | None = None) -> Outcome:
    """Call the handler with its context; never raises. `pending`: the other jobs of its batch
    (primary key, attempt), whose leases its heartbeat renews."""
    context = JobContext(job=job, handler=spec, attempt=job.attempts)
    too_big = ""
    heartbeat = Heartbeat(job=job, attempt=job.attempts, context=context, pending=pending)
    heartbeat.start()
    started_at = timezone.now()
    started = time.monotonic()
    worker_pid = os.getpid()
    try:
        # A daemon (timeout 0) runs until cancelled (or its worker stops): no timeout alarm, and
        # django-q2 got no timeout either.
        with hard_timeout(job.timeout_seconds, cancel=heartbeat):
            result = _call(spec, context)
        kept, too_big = result_safe(result, limit=settings.PULSE_MAX_RESULT_BYTES)
        outcome = Outcome(ok=True, result=kept)
    except JobCancelled as exc:
        # Settled as cancelled, as a handler that returned on ctx.cancelled(); the attempt says why.
        outcome = Outcome(ok=True, message=str(exc), traceback=traceback.format_exc())
    except JobInterrupted as exc:
        outcome = Outcome(ok=False, code=ErrorCode.INTERRUPTED, message=str(exc), retryable=True,
                          traceback=traceback.format_exc())
        log.warning("job %s interrupted on worker %s: %s Back in the queue for another worker.", job.public_id,
                    worker_name(), exc)
    except JobTimeout as exc:
        outcome = Outcome(ok=False, code=ErrorCode.TIMEOUT, message=str(exc), traceback=traceback.format_exc())
    except JobError as exc:
        outcome = Outcome(ok=False, code=exc.code, message=words(exc.message), details=json_safe(exc.details) or {},
                          retryable=exc.retryable, traceback=traceback.format_exc())
    except DatabaseError as exc:
        # The database went away under the handler: not the handler's fault, so it retries.
        outage = is_database_outage(exc)
        outcome = Outcome(ok=False, code=ErrorCode.DATABASE_ERROR if outage else ErrorCode.UNKNOWN,
                          message=exception_text(exc), retryable=True if outage else None,
                          traceback=traceback.format_exc())
    except Exception as exc:
        outcome = Outcome(ok=False, code=ErrorCode.UNKNOWN, message=exception_text(exc),
                          traceback=traceback.format_exc())
    except BaseException as exc:
        # SystemExit, KeyboardInterrupt, … raised by the handler itself (Pulse's own stops are
        # caught above, and django-q2's timeout cannot fire here: hard_timeout holds SIGALRM).
        # Let through, they ended the worker process, and the job stayed running until its lease
        # ran out, then ran again as `worker_lost`.
        outcome = Outcome(ok=False, code=ErrorCode.UNKNOWN, traceback=traceback.format_exc(),
                          message=f"{exception_text(exc)} (raised by the handler: it ends the attempt, not the "
                                  "worker; raise JobError to fail the job)")
    finally:
        if os.getpid() != worker_pid:
            # A child the handler forked came back here (it returned or raised instead of
            # exiting): it would settle the job too and go on as a second worker on the parent's
            # database connection.
            log.error("job %s: a process its handler forked (pid %s) came back into the worker instead of "
                      "exiting (end it with os._exit()); it is ended here, exit status 70", job.public_id,
                      os.getpid(), exc_info=sys.exc_info()[0] is not None)
            os._exit(os.EX_SOFTWARE)
        # The handler's time, not the heartbeat's stop (a thread join: milliseconds on a loaded
        # machine, which would make every short handler look slow to `_batch_limit`).
        ran = time.monotonic() - started
        heartbeat.stop()
        _drop_interrupted_query()
    outcome.run_ms = int(ran * 1000)
    outcome.started_at = started_at
    outcome.cost_micros = context.reported_cost_micros
    # The handler's words go to text columns, which refuse NUL on PostgreSQL: a settle that
    # failed on one left the job running.
    outcome.message = text_safe(outcome.message)[:ERROR_MESSAGE_LIMIT]
    outcome.traceback = text_safe(outcome.traceback)[-ERROR_TRACEBACK_LIMIT:]
    try:
        context.flush_progress()
    except Exception:
        log.exception("final progress write of %s failed", job.public_id)
    if outcome.ok and too_big:
        try:
            context.log(too_big, level="warning")
        except Exception:
            log.exception("the result-size line of %s failed", job.public_id)
    context.end()
    return outcome


def _call(spec: Handler, context: JobContext) -> Any:
    """The handler's call. An alarm of hard_timeout (a stop, the timeout, a cancel's grace) that
    lands while a transaction commits leaves the connection busy with the COMMIT: the transaction's
    end then fails on it (psycopg: "can't change 'autocommit' now: connection in transaction status
    ACTIVE") and that error is raised in the alarm's place. The job failed as `unknown` where a
    stop queues it again and a timeout fails it as one; the alarm is raised again here."""
    try:
        return spec.func(context)
    except Exception as exc:
        alarm = _alarm_under(exc)
        if alarm is None:
            raise
        raise alarm from None


def _alarm_under(exc: BaseException) -> BaseException | None:
    """The alarm `exc` was raised while handling, if any (its chain of contexts, cycles cut)."""
    seen: set[int] = set()
    under = exc.__context__
    while under is not None and id(under) not in seen:
        if isinstance(under, JobInterrupted | JobTimeout | JobCancelled):
            return under
        seen.add(id(under))
        under = under.__context__
    return None


# What of a handler's error is kept: the message (on the job, its attempt and the settle's log
# line, sent to every browser of the team) and the end of the traceback.
ERROR_MESSAGE_LIMIT = 10_000
ERROR_TRACEBACK_LIMIT = 50_000


def _drop_interrupted_query() -> None:
    """A handler stopped by its alarm (its timeout, its cancel's grace, a stopping worker) while
    it waited for a query of its own leaves the connection busy with that query (psycopg cancels
    one only on KeyboardInterrupt): the settle's first statement failed on it, the job stayed
    running until the lease's rescue, and the query ran on in the server with its locks. It is
    cancelled there (by the alarm, _cancel_queries_in_flight) and the connection dropped; the
    settle opens a new one."""
    for conn in _cancel_queries_in_flight():
        if not conn.in_atomic_block:
            conn.close()


def _cancel_queries_in_flight() -> list[Any]:
    """Cancel in the server the query (or COMMIT) each PostgreSQL connection of this thread waits
    for; the connections that were waiting."""
    waiting = []
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if conn.vendor != "postgresql" or raw is None or raw.info.transaction_status != TransactionStatus.ACTIVE:
            continue
        try:
            raw.cancel_safe(timeout=5)
        except Exception:  # a server that does not answer the cancel: the connection's close still frees us
            log.warning("cancelling the interrupted query of this worker's connection failed", exc_info=True)
        waiting.append(conn)
    return waiting


# --- settle ------------------------------------------------------------------------------------


def _retry_allowed(job: Job, spec: Handler | None, outcome: Outcome) -> bool:
    if job.attempts >= job.max_attempts:
        return False
    if outcome.retryable is not None:
        return outcome.retryable
    return spec is not None and outcome.code in spec.retry_on


@transaction.atomic
def settle(*, job_pk: int, attempt: int, outcome: Outcome, attempt_outcome: str | None = None) -> Job | None:
    """Record the attempt and move the job to its next state. Settling twice changes nothing."""
    settled = _settle_state(job_pk=job_pk, attempt=attempt, outcome=outcome, attempt_outcome=attempt_outcome)
    if settled is None:
        return None
    job, cost, status = settled
    _settle_counters(job, cost=cost, status=status, run_ms=outcome.run_ms)
    return job


def _settle_counters(job: Job, *, cost: int, status: str, run_ms: int, hand_on_slot: bool = False
                     ) -> Locked | None:
    # The team's budget policy row and its hourly stats row are what every worker of the team
    # (claims and settles alike) queues for: lock them last, so each is held for the fewest
    # statements before the commit. Measured by bench/: this is the single-team throughput limit.
    locked = budget_settle(job=job, actual_micros=cost, hand_on_slot=hand_on_slot)
    if status != Status.QUEUED:
        stat_bump(job, status, run_ms=run_ms)
    return locked


def _settle_state(*, job_pk: int, attempt: int, outcome: Outcome, attempt_outcome: str | None = None,
                  release: bool = True) -> tuple[Job, int, str] | None:
    """The job's and the attempt's side of a settle (no budget or stats rows): the job, the cost
    charged and its new status, or None if this attempt was settled already."""
    job = Job.objects.select_for_update().filter(pk=job_pk).first()
    if job is None or job.status != Status.RUNNING or job.attempts != attempt:
        return None
    now = timezone.now()
    if release:
        # Freed money or a slot: held jobs of the team go back through the gate once this commits.
        transaction.on_commit(lambda: _release_held(job.team_id))
    changes, cost, status, kind, attempt_state = _settle_changes(job, attempt, outcome, now)
    Job.objects.filter(pk=job.pk, status=Status.RUNNING, attempts=attempt).update(**changes)
    Attempt.objects.filter(job=job, number=attempt).update(
        finished_at=now, outcome=attempt_outcome or attempt_state, error_code=outcome.code,
        error_message=outcome.message[:ERROR_MESSAGE_LIMIT], traceback=outcome.traceback[-ERROR_TRACEBACK_LIMIT:],
        cost=cost, lease_expires_at=None,
    )
    # Locked since the SELECT above: what we read plus these changes is the row (no refresh).
    for name, value in changes.items():
        setattr(job, name, value)
    _settle_log(job, attempt, outcome, kind)
    _settle_event(job, kind, outcome)
    return job, cost, status


def _settle_changes(job: Job, attempt: int, outcome: Outcome, now: Any) -> tuple[dict[str, Any], int, str, str, str]:
    """What a settle writes to the locked running job: its changes, the cost charged, its new
    status, the event kind and the attempt's outcome."""
    cost = outcome.cost_micros if outcome.cost_micros is not None else job.cost_estimate
    spec = find_handler(job.handler)
    changes: dict[str, Any] = {
        "cost_actual": (job.cost_actual or 0) + cost,
        "lease_expires_at": None,
        "updated_at": now,
    }
    flags = FLAGS.get(outcome.code)
    if not outcome.ok:
        changes.update(
            error_code=outcome.code, error_message=outcome.message[:ERROR_MESSAGE_LIMIT], error_details=outcome.details,
            error_retryable=outcome.retryable if outcome.retryable is not None else (flags.retryable if flags else False),
            error_recoverable=flags.recoverable if flags else True,
        )
    if job.cancel_requested:
        status, kind, attempt_state = Status.CANCELLED, "cancelled", Attempt.Outcome.CANCELLED
    elif outcome.code == ErrorCode.INTERRUPTED:
        # Its worker stopped: back to the queue at once for another worker, whatever attempts are
        # left (not the job's fault). Put back before the handler started, it used up no attempt:
        # the attempt keeps its number (the budget ledger is per attempt) and one more is allowed.
        status, kind, attempt_state = Status.QUEUED, "interrupted", Attempt.Outcome.INTERRUPTED
        changes.update(run_after=None, dispatched_at=None, worker="")
        if not outcome.details.get("handler_started", True):
            changes.update(max_attempts=job.max_attempts + 1)
    elif spec is not None and spec.daemon:
        # A daemon only ends when cancelled: a failure or a return (an unexpected stop) restarts it.
        status, kind, attempt_state = Status.QUEUED, "restarting", Attempt.Outcome.RETRYING
        if outcome.ok:
            outcome.message = "The daemon returned without being cancelled (an unexpected stop)."
            changes.update(error_code=ErrorCode.UNKNOWN, error_message=outcome.message, error_retryable=True,
                           error_recoverable=True, error_details={})
        changes.update(run_after=now + timedelta(seconds=_daemon_backoff(spec, attempt, outcome)), dispatched_at=None)
    elif outcome.ok:
        status, kind, attempt_state = Status.COMPLETED, "completed", Attempt.Outcome.COMPLETED
        changes.update(result=outcome.result, error_code="", error_message="", error_details={},
                       error_retryable=None, error_recoverable=None)
    elif _retry_allowed(job, spec, outcome):
        status, kind, attempt_state = Status.QUEUED, "retrying", Attempt.Outcome.RETRYING
        delay = spec.backoff_seconds(attempt) if spec else 60.0
        changes.update(run_after=now + timedelta(seconds=delay), dispatched_at=None)
    else:
        status, kind, attempt_state = Status.FAILED, "failed", Attempt.Outcome.FAILED
    if status != Status.QUEUED:
        changes.update(completed_at=now, dispatched_at=None)
    changes["status"] = status
    return changes, cost, status, kind, attempt_state


DAEMON_HEALTHY_MS = 60_000


def _daemon_backoff(spec: Handler, attempt: int, outcome: Outcome) -> float:
    # A daemon that ran a good while before stopping restarts quickly; one that keeps dying at
    # once backs off exponentially (attempt counts every restart) up to the handler's cap.
    return spec.backoff_seconds(1 if outcome.run_ms >= DAEMON_HEALTHY_MS else attempt)


def _release_held(team_id: int) -> None:
    from jobs.services import job_release_held

    try:
        job_release_held(team_id=team_id)
    except Exception:
        # The ticker's release step catches up; a failed release must not fail the settle.
        log.exception("releasing held jobs of team %s failed", team_id)


def _settle_log(job: Job, attempt: int, outcome: Outcome, kind: str) -> None:
    if kind == "completed":
        _system_log(job, attempt, f"Completed in {outcome.run_ms} ms")
    elif kind == "cancelled":
        why = f": {outcome.message}" if outcome.message else ""
        _system_log(job, attempt, f"Cancelled after {outcome.run_ms} ms{why}", level="warning")
    elif kind == "interrupted":
        _system_log(job, attempt, f"Interrupted after {outcome.run_ms} ms: {outcome.message} Back in the queue "
                                  "for another worker.", level="warning")
    elif kind == "restarting":
        wait = (job.run_after - timezone.now()).total_seconds() if job.run_after else 0
        why = outcome.message if outcome.ok else f"{outcome.code}: {outcome.message}"
        _system_log(job, attempt, f"Daemon stopped after {outcome.run_ms} ms ({why}); restart {attempt} in "
                                  f"{wait:.1f} s", level="warning")
    elif kind == "retrying":
        wait = (job.run_after - timezone.now()).total_seconds() if job.run_after else 0
        _system_log(job, attempt, f"Failed after {outcome.run_ms} ms with {outcome.code}: {outcome.message}; "
                                  f"retrying in {wait:.1f} s", level="warning")
    else:
        _system_log(job, attempt, f"Failed after {outcome.run_ms} ms with {outcome.code}: {outcome.message}",
                    level="error")


# A database outage is waited out, not turned into a lost message or a lost result. The claim
# waits at most half of django-q2's margin past the handler's timeout (so its backstop never
# fires on a waiting claim); a claim given up consumed its message, and the ticker hands such
# jobs over again when it reaches the database ("database back"). The settle is retried: it is
# idempotent per attempt, and the handler's result is only in this process. If the lease ran
# out meanwhile and the rescuer settled the attempt first, this settle finds nothing to do
# (the job is retried: at least once, never lost).
CLAIM_PATIENCE_SECONDS = 15
SETTLE_PATIENCE_SECONDS = 300


def hand_back(job_id: str) -> None:
    """A task delivered to a stopping worker: the job goes back to the backlog unclaimed."""
    Job.objects.filter(public_id=job_id, status=Status.QUEUED).update(dispatched_at=None, updated_at=timezone.now())


def put_back_unstarted(job: Job) -> None:
    """A job claimed by a worker that began stopping before its handler started: settled as
    interrupted (its budget reservation and running slot released), without using up an attempt."""
    outcome = Outcome(ok=False, code=ErrorCode.INTERRUPTED, retryable=True, cost_micros=0,
                      details={"handler_started": False},
                      message="The worker was stopping; the handler had not started.")
    settle(job_pk=job.pk, attempt=job.attempts, outcome=outcome)


def run_job(job_id: str) -> None:
    """The worker's whole handling of one delivered job id, and of the jobs it chains after it."""
    stopping.set_busy(True)  # a stopping worker whose sentinel is gone waits for this to exit
    try:
        _run_job(job_id)
    finally:
        stopping.set_busy(False)


def _run_job(job_id: str) -> None:
    task_started = time.monotonic()
    if stopping.stopping():
        retry_through_outage(lambda: hand_back(job_id), what=f"hand-back of {job_id}",
                             give_up_after=CLAIM_PATIENCE_SECONDS)
        return
    claimed = retry_through_outage(lambda: claim(job_id), what=f"claim of {job_id}",
                                   give_up_after=CLAIM_PATIENCE_SECONDS)
    if claimed is None:
        return
    job, spec = claimed
    if stopping.stopping():
        current = job
        retry_through_outage(lambda: put_back_unstarted(current), what=f"put-back of {job.public_id}",
                             give_up_after=SETTLE_PATIENCE_SECONDS)
        return
    # django-q2 kills this task at the first job's timeout plus the margin (jobs.dispatch): a
    # chained job must fit in what is left of that.
    kill_at = task_started + job.timeout_seconds + HARD_TIMEOUT_MARGIN if job.timeout_seconds else None
    chain_until = task_started + settings.PULSE_CHAIN_SECONDS
    batch = [(job, spec)]
    while True:
        done = _run_batch(batch, kill_at=kill_at)
        room = None
        # A stopping worker chains nothing: the next job is left for another worker.
        if kill_at is not None and time.monotonic() < chain_until and not stopping.stopping():
            room = int(kill_at - time.monotonic()) - CHAIN_SAFETY_SECONDS
        if not done:
            break
        finished = done
        following = retry_through_outage(lambda: settle_and_take_next(done=finished, room=room),
                                         what=f"settle of {finished[0][0].public_id}",
                                         give_up_after=SETTLE_PATIENCE_SECONDS)
        if not following:
            break
        batch = following
    from jobs.dispatch import dispatch

    # Every settle hands over the next job, so the workers never idle while work waits.
    dispatch()


# Seconds a chained job's timeout must leave before django-q2's own kill of the task.
CHAIN_SAFETY_SECONDS = 5

# Each handler's recent run time in this process (ms, a moving average), which sizes its batches.
_run_ms: dict[str, float] = {}


def _note_run(handler: str, run_ms: int) -> None:
    previous = _run_ms.get(handler)
    _run_ms[handler] = run_ms if previous is None else 0.8 * previous + 0.2 * run_ms


def _batch_limit(handler: str) -> int:
    """How many jobs of `handler` to take at once: as many as its recent run time says finish in
    about PULSE_CHAIN_BATCH_MS, at most PULSE_CHAIN_BATCH; one if it has not run here yet."""
    mean = _run_ms.get(handler)
    if mean is None:
        return 1
    return max(1, min(settings.PULSE_CHAIN_BATCH, int(settings.PULSE_CHAIN_BATCH_MS / max(mean, 1.0))))


# A batch's next job is checked for a cancel (or a rescue) before its turn when the last check is
# older than this (the claim counts as one): a batch of no-op jobs runs in a few milliseconds, and
# a query per job would cost about as much as the rest of its claim and settle.
BATCH_RECHECK_SECONDS = 0.005


def _run_batch(batch: list[tuple[Job, Handler]], *, kill_at: float | None) -> list[tuple[Job, Outcome]]:
    """Run the claimed jobs one after the other: each job with its outcome (a job taken from this
    worker meanwhile, its lease expired and rescued, is left out). A later job cancelled before
    its turn does not run (it settles cancelled), and one that no longer fits before django-q2's
    kill of the task, or meets a stopping worker, goes back to the queue unstarted."""
    done: list[tuple[Job, Outcome]] = []
    checked = time.monotonic()
    for index, (job, spec) in enumerate(batch):
        if index:
            fits = kill_at is None or job.timeout_seconds <= kill_at - time.monotonic() - CHAIN_SAFETY_SECONDS
            if stopping.stopping() or not fits:
                done.append((job, _unstarted_outcome()))
                continue
            if time.monotonic() - checked >= BATCH_RECHECK_SECONDS:
                cancel = Job.objects.filter(pk=job.pk, status=Status.RUNNING, attempts=job.attempts).values_list(
                    "cancel_requested", flat=True).first()
                checked = time.monotonic()
                if cancel is None:
                    continue  # rescued: no longer this worker's attempt
                if cancel:
                    # Settles cancelled ("Cancelled after 0 ms"), charging nothing.
                    done.append((job, Outcome(ok=True, cost_micros=0, started_at=timezone.now())))
                    continue
        # Every other job of the batch keeps its lease while this one runs: those still waiting,
        # and those whose handler has returned but which settle with the batch (a slow member
        # must not get a finished one rescued and run again).
        outcome = execute(job, spec, pending=[(other.pk, other.attempts) for other, _ in batch if other is not job])
        _note_run(job.handler, outcome.run_ms)
        done.append((job, outcome))
    return done


def _unstarted_outcome() -> Outcome:
    return Outcome(ok=False, code=ErrorCode.INTERRUPTED, retryable=True, cost_micros=0,
                   details={"handler_started": False}, message="The worker was stopping; the handler had not started.")


def settle_and_take_next(*, done: list[tuple[Job, Outcome]], room: int | None
                         ) -> list[tuple[Job, Handler]] | None:
    """Settle the jobs of `done` and, when `room` (seconds left in this django-q2 task) allows,
    start the next jobs the dispatcher would choose, in the same transaction: the worker goes on to
    them without a dispatch, a broker round trip and a second commit. Several jobs are taken at
    once only of a handler that runs short here (`_batch_limit`). A daemon, a job whose timeout
    does not fit, or a job the gate holds ends the chain (the dispatcher hands it over as usual)."""
    if room is None or room <= 0:
        if len(done) == 1:
            job, outcome = done[0]
            settle(job_pk=job.pk, attempt=job.attempts, outcome=outcome)
            return None
        room = 0
    try:
        return _settle_and_take_next(done=done, room=room)
    except DatabaseError:
        raise  # an outage or a deadlock: retried as a whole by the caller
    except Exception:
        # Whatever went wrong with the next jobs must not lose these ones' results.
        log.exception("chaining after %s failed; settling alone", done[0][0].public_id)
        for job, outcome in done:
            settle(job_pk=job.pk, attempt=job.attempts, outcome=outcome)
        return None


@transaction.atomic
def _settle_and_take_next(*, done: list[tuple[Job, Outcome]], room: int) -> list[tuple[Job, Handler]] | None:
    rows = _Rows()
    token = _collecting.set(rows)
    try:
        taken = _settle_then_start(done=done, room=room)
        rows.write()
    finally:
        _collecting.reset(token)
    return taken


def _settle_then_start(*, done: list[tuple[Job, Outcome]], room: int) -> list[tuple[Job, Handler]] | None:
    from jobs.dispatch import next_for_chain

    settled = _settle_states(done)
    if not settled:
        return None
    team_id = settled[0][0].team_id
    now = timezone.now()
    candidates = next_for_chain(now=now, max_timeout=room, limit=_batch_limit(done[-1][0].handler)) if room > 0 else []
    head = candidates[0] if candidates else None
    spec = _claim_checks(head, now) if head is not None else None
    members: list[Job] = []
    if head is not None and spec is not None:
        # Locked as many as the handler that just ran may take; the head's own handler decides.
        members = [head]
        if spec.exclusive is None:
            for job in candidates[1:_batch_limit(head.handler)]:
                if job.handler != head.handler:
                    break
                members.append(job)
    # A slot is handed on only to a job the budget counts (Handler.metered): one handed to a
    # delivery would stay counted as running until the ticker's repair.
    hand_on = bool(members) and head is not None and head.team_id == team_id and spec is not None and spec.metered
    if hand_on and head is not None and budget_held_for_a_slot_before(job=head, most=1):
        # The slot (or start) freed here belongs to a job of the team held for one, which comes
        # first in the team's order: end the chain, so that the release below gives it the slot.
        members, hand_on = [], False
    if members and head is not None and not hand_on and spec is not None and spec.metered:
        # Two teams' policy rows in this transaction: both locked now, in team order.
        budget_lock_teams([team_id, head.team_id])
    locked, slots = _settle_counters_many(settled, keep_slots=hand_on)
    freed = slots if hand_on else 0
    started = _claim_admit_many(members, spec, freed_slots=freed, locked=locked) if members and spec else []
    charged_less = any(cost < job.cost_estimate for job, cost, _, _ in settled)
    if len(started) < freed or not (hand_on and locked is not None) or charged_less or _is_exclusive(
            settled[0][0].handler):
        # Held jobs of the team may start now: a slot, money or an exclusive handler was freed.
        # (Slots passed straight to the next jobs, with nothing charged below the estimate,
        # free nothing: no release query then.)
        transaction.on_commit(lambda: _release_held(team_id))
    return [(job, spec) for job in started] if started and spec is not None else None


def _settle_states(done: list[tuple[Job, Outcome]]) -> list[tuple[Job, int, str, int]]:
    """`_settle_state` for the jobs of a batch (one team): one lock of their rows, and the jobs and
    their attempts written with one UPDATE per distinct set of changes (no-op jobs: one each).
    Returns each settled job with its cost, new status and run time; jobs settled already are
    left out. The attempt's start is the handler's real start (a batch is claimed before it runs)."""
    pks = sorted(job.pk for job, _ in done)
    rows = {job.pk: job for job in Job.objects.select_for_update().filter(pk__in=pks).order_by("pk")}
    now = timezone.now()
    jobs_by_change: dict[str, tuple[dict[str, Any], list[tuple[int, Any]]]] = {}
    attempts_by_change: dict[str, tuple[dict[str, Any], list[tuple[int, int, Any]]]] = {}
    settled: list[tuple[Job, int, str, int]] = []
    for mine, outcome in done:
        job = rows.get(mine.pk)
        if job is None or job.status != Status.RUNNING or job.attempts != mine.attempts:
            continue
        attempt = job.attempts
        changes, cost, status, kind, attempt_state = _settle_changes(job, attempt, outcome, now)
        started_at = outcome.started_at
        # The job's start is its first attempt's.
        first_start = attempt == 1 and started_at is not None
        group = jobs_by_change.setdefault(repr(sorted(changes.items())), (changes, []))
        group[1].append((job.pk, started_at if first_start else None))
        values = dict(finished_at=now, outcome=attempt_state, error_code=outcome.code,
                      error_message=outcome.message[:ERROR_MESSAGE_LIMIT],
                      traceback=outcome.traceback[-ERROR_TRACEBACK_LIMIT:], cost=cost, lease_expires_at=None)
        attempts_by_change.setdefault(repr(sorted(values.items())), (values, []))[1].append(
            (job.pk, attempt, started_at))
        for name, value in changes.items():
            setattr(job, name, value)
        if first_start and started_at is not None:
            job.started_at = started_at
        _settle_log(job, attempt, outcome, kind)
        _settle_event(job, kind, outcome)
        settled.append((job, cost, status, outcome.run_ms))
    for changes, members in jobs_by_change.values():
        starts = [When(pk=pk, then=Value(at)) for pk, at in members if at is not None]
        extra = {"started_at": Case(*starts, default=F("started_at"), output_field=DateTimeField())} if starts else {}
        Job.objects.filter(pk__in=[pk for pk, _ in members]).update(**changes, **extra)
    for values, attempts in attempts_by_change.values():
        which = Q()
        for pk, number, _ in attempts:
            which |= Q(job_id=pk, number=number)
        starts = [When(job_id=pk, number=number, then=Value(at)) for pk, number, at in attempts if at is not None]
        extra = {"started_at": Case(*starts, default=F("started_at"), output_field=DateTimeField())} if starts else {}
        Attempt.objects.filter(which).update(**values, **extra)
    return settled


def _settle_counters_many(settled: list[tuple[Job, int, str, int]], *, keep_slots: bool) -> tuple[Locked | None, int]:
    # As in _settle_counters: the team's hot rows (policy, stats) are locked last.
    locked, slots = budget_settle_many(settled=[(job, cost) for job, cost, _, _ in settled], keep_slots=keep_slots)
    finished: dict[tuple[str, str], list[tuple[Job, int]]] = {}
    for job, _, status, run_ms in settled:
        if status != Status.QUEUED:
            finished.setdefault((job.handler, status), []).append((job, run_ms))
    for (_, status), jobs in finished.items():
        stat_bump(jobs[0][0], status, run_ms=sum(run_ms for _, run_ms in jobs), count=len(jobs))
    return locked, slots


def _claim_admit_many(members: list[Job], spec: Handler, *, freed_slots: int, locked: Locked | None) -> list[Job]:
    """`_claim_admit` for the jobs of a batch (one team and handler, locked, checked by
    `_claim_checks` through the first: the others share its handler, team and moment): the budget
    gate for each in order, then the starts of those admitted written together. A later job the
    gate would hold is left queued for the dispatcher; the first is held or failed as usual."""
    decisions = (budget_admit_many(jobs=members, freed_slots=freed_slots, locked=locked) if spec.metered
                 else [_unmetered() for _ in members])
    first = decisions[0]
    if first.fail:
        _fail_over_budget(members[0], first.reasons)
        return []
    if not first.allowed:
        _hold(members[0], first.reasons, first.resume_at)
        return []
    admitted = members[:len(decisions)]
    now = timezone.now()
    attempts = []
    for job, decision in zip(admitted, decisions):
        _, attempt = _start(job, decision, now)
        attempts.append(attempt)
        _system_log(job, attempt.number, _started_message(job, attempt))
        _job_event(job, "started")
    # The rows are locked by this transaction (next_for_chain): no other claim can move them.
    Job.objects.bulk_update(admitted, ["status", "attempts", "started_at", "lease_expires_at", "worker", "pulse_state",
                                       "hold_reasons", "resume_at", "updated_at", "dispatched_at"])
    Attempt.objects.bulk_create(attempts)
    return admitted


def _is_exclusive(name: str) -> bool:
    spec = find_handler(name)
    return spec is not None and spec.exclusive is not None


# --- rescue ------------------------------------------------------------------------------------


def rescue_expired(*, limit: int = 100) -> int:
    """Jobs whose lease ran out (their worker died): the attempt ends `worker_lost`; the job
    retries if attempts remain, else fails. Each job in its own transaction."""
    now = timezone.now()
    ids = list(
        Job.objects.filter(status=Status.RUNNING, lease_expires_at__lt=now).order_by("lease_expires_at")
        .values_list("pk", "attempts")[:limit]
    )
    rescued = 0
    for pk, attempt in ids:
        with transaction.atomic():
            locked = (
                Job.objects.select_for_update(skip_locked=True)
                .filter(pk=pk, status=Status.RUNNING, attempts=attempt, lease_expires_at__lt=timezone.now())
                .first()
            )
            if locked is None:
                continue
            # How long the attempt ran until now (its row's end): the settle's log line, the
            # hourly stats and a daemon's restart backoff read it.
            started = Attempt.objects.filter(job_id=pk, number=attempt).values_list("started_at", flat=True).first()
            run_ms = max(0, int((timezone.now() - started).total_seconds() * 1000)) if started else 0
            outcome = Outcome(ok=False, code=ErrorCode.WORKER_LOST, retryable=None, run_ms=run_ms,
                              message=f"The worker {locked.worker or '?'} stopped renewing the lease (it died or hung).")
            if settle(job_pk=pk, attempt=attempt, outcome=outcome, attempt_outcome=Attempt.Outcome.WORKER_LOST):
                rescued += 1
    return rescued
