"""Submitting, cancelling, pausing, resuming and retrying jobs: one service per action, used by
the dashboard, the API, the admin, schedules and handlers alike."""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from budgets.services import (
    AHEAD_COUNTED,
    HOLD_KINDS,
    SLOT_HOLDS,
    budget_check_submittable,
    budget_hold_check,
    budget_preview,
    budget_queued_for_a_slot,
)
from jobs.dispatch import enqueue, hand_over_at_submit
from jobs.events import job_event, job_event_row
from jobs.gate import GATE_KINDS, gate_check_submittable, gate_reasons
from jobs.handlers.registry import Handler, find_handler, get_handler, get_public_handler
from jobs.models import Job
from jobs.signals import job_cancelled, job_retried
from pulse_site.errors import Conflict, NotFound, PulseError, ValidationError
from pulse_site.sqlbatch import WriteBatch
from pulse_site.teams.models import Team
from pulse_site.teams.services import team_check_takes_work, teams_refusing_work

Status = Job.Status
IDEMPOTENCY_WINDOW = timedelta(hours=24)
# How far ahead a job may ask to start (`run_after`); further is a schedule's work.
RUN_AFTER_MAX_DAYS = 365


class PayloadTooLarge(PulseError):
    code = "payload_too_large"
    status = 413


@dataclass
class Submission:
    job: Job
    created: bool
    would_hold: list[dict[str, Any]] = field(default_factory=list)


def _request_hash(handler: str, payload: object, priority: int, run_after: datetime | timedelta | None = None,
                  notify: str = "") -> str:
    """The request as the client wrote it (the payload before its defaults are filled in: a repeat
    after a deployment that changed a default is still the same request; a start asked for as a
    delay is the delay, not the time it came to: a retry seconds later is the same request; the
    target it named, not the watch written for it, which its delivery deletes)."""
    request: dict[str, Any] = {"handler": handler, "payload": payload, "priority": priority}
    # (Each absent when not asked for: the hashes of keys stored before stay the same.)
    if isinstance(run_after, timedelta):
        request["delay_seconds"] = run_after.total_seconds()
    elif run_after is not None:
        request["run_after"] = run_after.isoformat()
    if notify:
        request["notify"] = notify
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _payload_bytes(payload: object) -> int:
    try:
        return len(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise ValidationError.for_field("payload", f"The payload is not valid JSON: {exc}") from None


def check_payload_size(payload: object) -> None:
    """A payload as sent within PULSE_MAX_PAYLOAD_BYTES (413 otherwise), checked before any work on it."""
    size = _payload_bytes(payload)
    if size > settings.PULSE_MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"payload: {size} bytes is over the limit of {settings.PULSE_MAX_PAYLOAD_BYTES}.",
                              fields={"payload": [f"At most {settings.PULSE_MAX_PAYLOAD_BYTES} bytes."]})


def payload_validate(*, spec: Handler, payload: object) -> dict[str, Any]:
    """The payload as a job stores it: valid against the handler's schema, its defaults filled in,
    and within PULSE_MAX_PAYLOAD_BYTES as stored. The limit is the stored payload's (the one the
    worker loads and the pages show), so one that fits as sent but not with its defaults is refused
    by field (400: the request was within bounds, the job it asks for is not)."""
    check_payload_size(payload)
    body = spec.validate(payload)
    size, limit = _payload_bytes(body), settings.PULSE_MAX_PAYLOAD_BYTES
    if size > limit:
        raise ValidationError.for_field(
            "payload", f"The payload is {size} bytes with the handler's defaults filled in: at most {limit}.")
    return body


def _validate_priority(priority: object) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not -100 <= priority <= 100:
        raise ValidationError.for_field("priority", "A whole number from -100 to 100.")
    return priority


def idempotency_conflict() -> Conflict:
    """The refusal of an Idempotency-Key's repeat that asks for something else than the first request."""
    return Conflict("Idempotency-Key was already used with a different request.", code="idempotency_conflict",
                    fields={"idempotency_key": ["Used before with a different body."]})


def _replayed(team: Team, key: str, request_hash: str) -> Job | None:
    """The job first submitted with `key` within the window, or None; 409 for another body."""
    existing = Job.objects.filter(team=team, idempotency_key=key).first()
    if existing is None:
        return None
    if existing.created_at < timezone.now() - IDEMPOTENCY_WINDOW:
        # The key has expired: free it for this request.
        Job.objects.filter(pk=existing.pk, idempotency_key=key).update(idempotency_key=None)
        return None
    if existing.request_hash != request_hash:
        raise idempotency_conflict()
    return existing


def _prepare(
    *,
    team: Team,
    handler: str,
    payload: object,
    source: str,
    priority: object = 0,
    parent: Job | None = None,
    idempotency_key: str | None = None,
    created_by: str = "",
    estimate_micros: int | None = None,
    run_after: datetime | timedelta | None = None,
    origin: str = "",
    internal: bool = False,
    start_by: datetime | None = None,
    notify: str = "",
) -> Job:
    """The unsaved job of a valid submission; ValidationError (or another PulseError) if not."""
    asked_start = run_after
    if isinstance(run_after, timedelta):
        run_after = timezone.now() + run_after
    spec = get_handler(handler) if internal else get_public_handler(handler)
    body = payload_validate(spec=spec, payload=payload)
    priority = _validate_priority(priority)
    if source not in Job.Source.values:
        raise ValidationError.for_field("source", f"Unknown source '{source}'.")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise ValidationError.for_field("idempotency_key", "Between 1 and 255 characters.")
    run_after = _validate_run_after(run_after)
    if estimate_micros is None:
        estimate_micros = spec.estimate_micros(body)
    return Job(
        due_at=run_after if run_after is not None and run_after > timezone.now() else None,
        team=team, handler=handler, handler_version=spec.version, payload=body, source=source,
        priority=priority, parent=parent, cost_estimate=estimate_micros, max_attempts=spec.max_attempts,
        timeout_seconds=0 if spec.daemon else spec.timeout, idempotency_key=idempotency_key or None,
        request_hash=_request_hash(handler, payload, priority, asked_start, notify), created_by=created_by[:150], run_after=run_after,
        origin=origin, start_by=start_by,
    )


def _validate_run_after(run_after: object) -> datetime | None:
    """A start asked for later: an aware time at most RUN_AFTER_MAX_DAYS ahead; one already past
    starts now (and is kept as given)."""
    if run_after is None:
        return None
    if not isinstance(run_after, datetime) or timezone.is_naive(run_after):
        raise ValidationError.for_field("run_after", "A time with its zone or offset (ISO 8601).")
    if run_after > timezone.now() + timedelta(days=RUN_AFTER_MAX_DAYS):
        raise ValidationError.for_field("run_after", f"At most {RUN_AFTER_MAX_DAYS} days ahead; "
                                                     "use a schedule for later runs.")
    return run_after


def _check_submittable(job: Job) -> bool:
    """What could never run is refused now, not held forever later. Returns whether a budget
    limit could hold the job at all (if not, the submit's preview is empty without a look)."""
    limited = budget_check_submittable(team=job.team, handler=job.handler, estimate_micros=job.cost_estimate)
    gate_check_submittable(team=job.team, spec=get_handler(job.handler))
    return limited


def job_submit(
    *,
    team: Team,
    handler: str,
    payload: object,
    source: str,
    priority: object = 0,
    parent: Job | None = None,
    idempotency_key: str | None = None,
    created_by: str = "",
    estimate_micros: int | None = None,
    run_after: datetime | timedelta | None = None,
    origin: str = "",
    internal: bool = False,
    notify: str = "",
    schedule_locked: bool = False,
) -> Submission:
    """Validate and write a job `queued`; a worker starts it once the transaction commits.

    `run_after`: start no earlier than this time, or this long after the submit (a timedelta;
    an Idempotency-Key's repeat asking the same delay later is the same request).

    `notify`: the notification target the request names (its NT_ id), part of what an
    Idempotency-Key's repeat must match; the caller writes its watch when `created`.

    `estimate_micros` overrides the handler's estimate (a schedule's override); otherwise the
    handler's estimator or fixed cost is used, never a silent zero.

    `internal`: Pulse's own submit (a notification's delivery), the only one that may name an
    internal handler; what a team asks for (the API, the dashboard, a schedule, a handler's
    child) never sets it, and is refused such a handler as an unknown one. Pulse's own work is not
    the team's: a retired team's notifications are still delivered.

    A retired team's submit is refused (team_check_takes_work); a caller holding a row lock of the
    team's jobs or schedules must take that check first, or it would deadlock with a retirement.
    `schedule_locked`: the ticker firing a schedule whose row it holds (teams_refusing_work's
    wait=False).
    """
    job = _prepare(team=team, handler=handler, payload=payload, source=source, priority=priority, parent=parent,
                   idempotency_key=idempotency_key, created_by=created_by, estimate_micros=estimate_micros,
                   run_after=run_after, origin=origin, internal=internal, notify=notify)
    # Only a transaction of its own may take the fast path: the dispatch lock it takes lasts until
    # the outermost commit, and a caller's transaction could hold it (and stall dispatch) long.
    own_transaction = not transaction.get_connection().in_atomic_block
    with transaction.atomic():
        if idempotency_key:
            existing = _replayed(team, idempotency_key, job.request_hash)
            if existing is not None:
                return Submission(job=existing, created=False, would_hold=job_would_hold(existing))
        # In this transaction: a retirement racing it either waits for its commit and cancels the
        # job, or has committed and the job is refused.
        if not internal:
            team_check_takes_work(team=team, wait=not schedule_locked)
        # Created when written, not when validation began.
        job.created_at = job.updated_at = timezone.now()
        handed_over = own_transaction and hand_over_at_submit(job, job.created_at)
        sent_now = handed_over and connection.vendor == "postgresql"
        if sent_now:
            # Sent now, before the checks below and the INSERT commit, so that django-q2's way to
            # a worker (1–2 ms) overlaps the rest of this transaction: the worker's claim waits for
            # this commit (the job's submit lock, held since the hand-over), and finds nothing
            # after a rollback (a refusal below, a lost race on the idempotency key).
            enqueue([(job.public_id, job.timeout_seconds)])
        # (A replay above still answers with its job even if the limits were lowered since.)
        limited = _check_submittable(job)
        # The job and its event in one statement (on PostgreSQL; the submit is on every job's way
        # to its start, and the ORM's compiling of the two INSERTs cost more than running them).
        batch = WriteBatch()
        batch.insert([job])
        batch.insert([job_event_row(job, "created")])
        try:
            # The savepoint only serves the race on an idempotency key (two statements saved without).
            with transaction.atomic() if idempotency_key else nullcontext():
                batch.flush()
        except IntegrityError:
            # A concurrent request with the same key won the insert: answer with its job.
            existing = _replayed(team, idempotency_key or "", job.request_hash) if idempotency_key else None
            if existing is None:
                raise
            return Submission(job=existing, created=False, would_hold=job_would_hold(existing))
        if not handed_over:
            _dispatch_on_commit()
        elif not sent_now:
            transaction.on_commit(lambda: enqueue([(job.public_id, job.timeout_seconds)]))
    return Submission(job=job, created=True, would_hold=_would_hold(job, limited))


def job_would_hold(job: Job) -> list[dict[str, Any]]:
    """A submit's `would_hold` for a job as it stands now (an Idempotency-Key's repeat answers
    with it): a held job's reasons; for a queued one, what would hold it if it started now; none
    once it has started, or if its handler is gone."""
    if job.status == Job.Status.PAUSED:
        return list(job.hold_reasons)
    if job.status != Job.Status.QUEUED or find_handler(job.handler) is None:
        return []
    return _would_hold(job, limited=True)


def _would_hold(job: Job, limited: bool) -> list[dict[str, Any]]:
    """Advisory: why `job` would be held if it started now: a pause in force, an exclusive
    handler's running job, the budget's limits (`limited`: whether any could hold it at all)."""
    return gate_reasons(job=job, spec=get_handler(job.handler)) + (budget_preview(job=job) if limited else [])


@dataclass(frozen=True)
class Preview:
    """What a submit would meet now, with nothing written: the job's estimate, its start time if
    later, and why it would be held if it started now (empty: nothing would hold it)."""

    estimate_micros: int
    run_after: datetime | None
    would_hold: list[dict[str, Any]]


def job_submit_preview(*, team: Team, handler: str, payload: object, priority: object = 0,
                       run_after: datetime | timedelta | None = None) -> Preview:
    """job_submit's checks without its writes: the refusal it would meet is raised as job_submit
    raises it, and its `would_hold` is the submit's. Advisory: the state may change before a submit."""
    job = _prepare(team=team, handler=handler, payload=payload, source=Job.Source.API, priority=priority,
                   run_after=run_after)
    team_check_takes_work(team=team, wait=False)  # advisory: the flag, not the submit's lock
    return Preview(estimate_micros=job.cost_estimate, run_after=job.run_after,
                   would_hold=_would_hold(job, _check_submittable(job)))


@dataclass
class SubmitItem:
    """One job of a `job_submit_many` (the keyword arguments of job_submit, no idempotency key)."""

    team: Team
    handler: str
    payload: object
    source: str
    created_by: str = ""
    estimate_micros: int | None = None
    origin: str = ""
    run_after: datetime | None = None
    # A schedule's run written ahead of its slot: not handed over after this (Job.start_by).
    start_by: datetime | None = None


def job_submit_many(*, items: list[SubmitItem]) -> list[Job | PulseError]:
    """Submit many jobs at once (a schedule tick's batch): each validated and checked like
    job_submit, the good ones written with one INSERT and their events with another, and one
    dispatch after the commit (none when every job waits for a later `run_after`). Returns, per
    item, its job or the error that refused it (nothing is written for those)."""
    results: list[Job | PulseError] = []
    checked: dict[tuple[int, str, int], PulseError | None] = {}
    for item in items:
        try:
            job = _prepare(team=item.team, handler=item.handler, payload=item.payload, source=item.source,
                           created_by=item.created_by, estimate_micros=item.estimate_micros, origin=item.origin,
                           run_after=item.run_after, start_by=item.start_by)
            key = (item.team.pk, job.handler, job.cost_estimate)
            # The limits and the exclusive rule are the same for every job of a team, handler and
            # estimate in one batch; only an exclusive "refuse" handler is asked each time.
            if key not in checked or get_handler(job.handler).exclusive == "refuse":
                try:
                    _check_submittable(job)
                    checked[key] = None
                except PulseError as exc:
                    checked[key] = exc
            if checked[key] is not None:
                raise checked[key]  # type: ignore[misc]
            results.append(job)
        except PulseError as exc:
            results.append(exc)
    jobs = [job for job in results if isinstance(job, Job)]
    if jobs:
        with transaction.atomic():
            # The schedule tick's batch, its schedules locked: the flag is read, not waited for.
            refused = teams_refusing_work(team_ids=[job.team_id for job in jobs], wait=False)
            if refused:
                results = [refused.get(r.team_id, r) if isinstance(r, Job) else r for r in results]
                jobs = [job for job in results if isinstance(job, Job)]
            Job.objects.bulk_create(jobs)
            job_events_many(jobs, "created")
            now = timezone.now()
            if any(job.run_after is None or job.run_after <= now for job in jobs):
                _dispatch_on_commit()
    return results


def job_events_many(jobs: list[Job], kind: str) -> None:
    """job_event for many jobs in one INSERT."""
    from pulse_site.live.models import Event

    Event.objects.bulk_create([job_event_row(job, kind) for job in jobs])


def _dispatch_after_commit() -> None:
    from jobs.dispatch import dispatch

    dispatch()


def _dispatch_on_commit() -> None:
    """Dispatch once the outermost transaction commits, once however many jobs it queued: a
    schedule tick firing a batch, or a release of many held jobs, makes one dispatch."""
    from django.db import connection

    if connection.in_atomic_block and any(entry[1] is _dispatch_after_commit for entry in connection.run_on_commit):
        return
    transaction.on_commit(_dispatch_after_commit)


def _update(job: Job, *, expected: tuple[str, ...], where: Q | None = None, **changes: Any) -> bool:
    """Move `job` only if it is still in one of the `expected` statuses (and matches `where`): a
    claim, not a blind write."""
    changes.setdefault("updated_at", timezone.now())
    updated = Job.objects.filter(pk=job.pk, status__in=expected).filter(where or Q()).update(**changes)
    if updated:
        for name, value in changes.items():
            setattr(job, name, value)
    return bool(updated)


def _refresh_for_update(job: Job) -> Job:
    """The job, locked; NotFound when it was deleted since the caller read it (another user,
    the retention pruner, a second "delete all matching"), as a lookup would have said."""
    locked = Job.objects.select_for_update().filter(pk=job.pk).first()
    if locked is None:
        raise NotFound("No such job in this team.")
    return locked


@transaction.atomic
def job_cancel(*, job: Job, by: str = "") -> Job:
    """Queued or held: cancelled now. Running: the handler is told and the job ends cancelled.
    Unfinished children are cancelled with their parent."""
    job = _refresh_for_update(job)
    if job.status not in Job.ACTIVE:
        raise Conflict(f"The job is already {job.status}; only queued, held or running jobs can be cancelled.",
                       code="job_finished")
    cancelled: list[Job] = []
    _cancel_tree(job, by, cancelled)
    # The hourly stats rows are locked after every job of the tree, as a settle locks its job
    # before its stats row: counted while jobs were still to lock, a child settling meanwhile
    # (same handler, same row) and this cancel each waited for the other (a deadlock).
    from jobs.stats import stat_bump

    for handler in sorted({j.handler for j in cancelled}):
        same = [j for j in cancelled if j.handler == handler]
        stat_bump(same[0], "cancelled", run_ms=0, count=len(same))
    return job


def _cancel_tree(job: Job, by: str, cancelled: list[Job]) -> None:
    """Cancel the locked `job` and, locking each, its unfinished children, theirs and so on
    (parents before children, as a spawn locks them); `cancelled` gets the jobs that ended now."""
    now = timezone.now()
    if job.status in (Status.QUEUED, Status.PAUSED):
        _update(job, expected=(Status.QUEUED, Status.PAUSED), status=Status.CANCELLED, completed_at=now,
                cancel_requested=True, cancelled_by=by[:200], hold_reasons=[], resume_at=None, dispatched_at=None)
        cancelled.append(job)
        job_event(job, "cancelled", by=by)
        job_cancelled.send(sender=Job, job=job, by=by)
    elif job.status == Status.RUNNING and not job.cancel_requested:
        _update(job, expected=(Status.RUNNING,), cancel_requested=True, cancelled_by=by[:200])
        job_event(job, "cancel_requested", by=by)
    for child in Job.objects.select_for_update().filter(parent=job, status__in=Job.ACTIVE).order_by("pk"):
        _cancel_tree(child, by or "parent cancelled", cancelled)


@transaction.atomic
def job_pause(*, job: Job, by: str = "") -> Job:
    """Hold a queued job until a person resumes it."""
    job = _refresh_for_update(job)
    if job.status != Status.QUEUED:
        raise Conflict(f"Only queued jobs can be held; this one is {job.status}.", code="not_queued")
    reason = {"kind": "manual", "message": f"Held by {by}" if by else "Held by a person", "by": by}
    _update(job, expected=(Status.QUEUED,), status=Status.PAUSED, hold_reasons=[reason], resume_at=None,
            dispatched_at=None)
    job_event(job, "paused", by=by)
    return job


@transaction.atomic
def job_resume(*, job: Job, by: str = "") -> Job:
    """Put a held job back in the queue; it passes admission again before it runs."""
    job = _refresh_for_update(job)
    refusal = job_resume_refusal(job)
    if refusal is not None:
        raise refusal
    # A job that has not started and was given a time to run at (a schedule's run staged for its
    # slot, a submit with run_after) keeps that time; a held retry goes now.
    keep_time = job.attempts == 0 and job.run_after is not None and job.run_after > timezone.now()
    _update(job, expected=(Status.PAUSED,), status=Status.QUEUED, hold_reasons=[], resume_at=None,
            dispatched_at=None, run_after=job.run_after if keep_time else None,
            # Resumed after its slot by a person who wants it run: not a missed slot's run.
            start_by=job.start_by if keep_time else None)
    job_event(job, "resumed", by=by)
    _dispatch_on_commit()
    return job


def job_resume_refusal(job: Job) -> Conflict | None:
    """Why job_resume would refuse `job`, or None when it would resume it (the job page offers
    "Resume" by this). A job a limit or a gate holds would only meet its hold again: the ticker
    releases it when the hold ends."""
    if job.status != Status.PAUSED:
        return Conflict(f"Only held jobs can be resumed; this one is {job.status}.", code="not_paused")
    if job_is_held_by_limits(job):
        return Conflict("This job is held by a limit or a paused queue: it is released by itself when that "
                        "allows, and a Resume would hold it again. Raise the limit or resume the queue instead.",
                        code="held_by_limits")
    return None


def job_start_refusal(job: Job) -> Conflict | None:
    """Why job_start would refuse `job`, or None when it would start it (the job page offers
    "Start now" by this)."""
    if job.status != Status.QUEUED or job.run_after is None or job.run_after <= timezone.now():
        return Conflict("Only a queued job waiting for a later start can be started now.", code="not_waiting")
    if job.source == Job.Source.SCHEDULE and job.attempts == 0:
        return Conflict("This run waits for its schedule's slot; use the schedule's Run now to run it earlier.",
                        code="schedule_slot")
    return None


@transaction.atomic
def job_start(*, job: Job, by: str = "") -> Job:
    """Start now a queued job that waits for a later start (its run_after, a retry's backoff, a
    daemon's restart delay): it goes to admission at once like any other job. A schedule's run
    written ahead of its slot is refused: it belongs to the slot (the schedule's "Run now" runs
    the schedule now)."""
    job = _refresh_for_update(job)
    refusal = job_start_refusal(job)
    if refusal is not None:
        raise refusal
    # Not yet started, it is due now: its wait counts from here.
    changes: dict[str, Any] = {"run_after": None, **({"due_at": timezone.now()} if not job.attempts else {})}
    _update(job, expected=(Status.QUEUED,), **changes)
    job_event(job, "expedited", by=by)
    _dispatch_on_commit()
    return job


@transaction.atomic
def job_retry(*, job: Job, by: str = "") -> Job:
    """Run a failed or cancelled job again: a new attempt on the same job, history kept, with the
    handler's full retry policy."""
    team_check_takes_work(team=job.team_id)  # before the job's lock (teams_refusing_work)
    job = _refresh_for_update(job)
    if job.status not in (Status.FAILED, Status.CANCELLED):
        raise Conflict(f"Only failed or cancelled jobs can be retried; this one is {job.status}.",
                       code="not_retryable")
    spec = get_handler(job.handler)
    _update(job, expected=(Status.FAILED, Status.CANCELLED), status=Status.QUEUED,
            max_attempts=job.attempts + spec.max_attempts, cancel_requested=False, cancelled_by="", completed_at=None,
            run_after=None, dispatched_at=None, start_by=None, error_code="", error_message="", error_retryable=None,
            error_recoverable=None, error_details={}, progress_current=0, progress_total=None, progress_message="")
    job_event(job, "retried", by=by)
    job_retried.send(sender=Job, job=job, by=by)
    _dispatch_on_commit()
    return job


@transaction.atomic
def job_delete(*, job: Job, by: str = "") -> Job:
    """Remove a finished job with its attempts and logs. Its spend stays in the budget ledger and
    its count in the hourly stats (history is not rewritten); children and executions keep a
    dangling reference (SET NULL). Unfinished jobs are refused: cancel them first."""
    job = _refresh_for_update(job)
    if job.status not in Job.FINAL:
        raise Conflict(f"Only finished jobs can be deleted; this one is {job.status}. Cancel it first.",
                       code="job_not_finished")
    job_event(job, "deleted", by=by)
    job.delete()
    return job


# How many held jobs one release looks at: enough for any real burst of freed room, few enough
# that a team with thousands of held jobs costs the ticker a bounded amount of work.
RELEASE_BATCH = 100


# Holds that end by themselves: the budget's (budget, rate, concurrency) and the jobs' own (a
# paused queue, an exclusive handler). A person's hold waits for a person.
RELEASABLE_KINDS = (*HOLD_KINDS, *GATE_KINDS)


# Held by the budget with no time to resume: an estimate alone over a limit (lowered since its
# submit). The budget's reasons come after the rate's and the concurrency's, and the resume time is
# the latest of the reasons': only a raised limit or an override frees it.
NEEDS_A_CHANGE = Q(resume_at__isnull=True, hold_reasons__0__kind="budget")


# A hold that ends by itself. A release pass reads the held jobs, then decides on each: its writes
# are conditional on this too, for a person may have resumed a job and held it again meanwhile.
HELD_BY_LIMITS = Q(hold_reasons__0__kind__in=RELEASABLE_KINDS)


def job_is_held_by_limits(job: Job) -> bool:
    """Whether a held job waits for a limit or a gate (released by the ticker), not for a person."""
    reasons = job.hold_reasons or []
    return bool(reasons) and isinstance(reasons[0], dict) and reasons[0].get("kind") in RELEASABLE_KINDS


def _held_by_limits(team_id: int):
    return Job.objects.filter(HELD_BY_LIMITS, team_id=team_id, status=Status.PAUSED)


def _gate_blocks(job: Job, started: set[str], seen: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The jobs' own reasons to keep holding `job` (advisory); `started` are the exclusive
    handlers of jobs released earlier in this pass, which will be running by the time it is.
    `seen`: the answers of this pass per handler (a pause and an exclusive handler's running job
    are the team's and the handler's, not the job's: one read each, not one per held job)."""
    try:
        spec = get_handler(job.handler)
    except PulseError:
        return []  # admission fails it with the reason
    if spec.exclusive and spec.name in started:
        return [{"kind": "exclusive", "handler": spec.name, "resume_at": None,
                 "message": f"{spec.name} runs one job at a time; another was just released."}]
    if spec.name not in seen:
        seen[spec.name] = gate_reasons(job=job, spec=spec)
    return seen[spec.name]


# What a budget reason says that moves with every settle (the money spent and reserved): a held
# job's reasons are not rewritten for these alone (one UPDATE per held job after every settle
# would cost more than it tells). Everything else, the limit that binds, its value, the running
# jobs or starts, the jobs ahead and the resume time, is kept true.
_MOVING_FIGURES = ("message", "committed", "reserved")


def _told(reasons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in _MOVING_FIGURES} if isinstance(r, dict) else r for r in reasons]


def _ahead_of(job: Job, ahead: list[tuple[int, int]]) -> int:
    """How many of `ahead` ((priority, id) of jobs queued for a slot) come before `job`."""
    return sum(1 for priority, pk in ahead if priority > job.priority or (priority == job.priority and pk < job.pk))


def _rehold(job: Job, reasons: list[dict[str, Any]], resume_at: datetime | None) -> None:
    """A held job's reasons rewritten, and said live (a job.paused of the same hold: pages redraw
    it; a held_long rule keeps timing the hold from its first job.paused)."""
    if _update(job, expected=(Status.PAUSED,), where=HELD_BY_LIMITS, hold_reasons=reasons, resume_at=resume_at):
        job_event(job, "paused")


def _due(now: datetime) -> Q:
    """Held jobs the ticker's pass looks at: those whose resume time has come, those waiting for a
    slot (in case the release after a settle was missed), and those held first for a slot or a
    start that also wait for a later time (the money): once the slot or start is free their
    reasons must say so, for a job held first for one keeps the jobs behind it from the room
    (budget_held_for_a_slot_before)."""
    return Q(resume_at__lte=now) | Q(resume_at__isnull=True) | Q(hold_reasons__0__kind__in=SLOT_HOLDS)


def job_release_held(*, team_id: int, due_only: bool = False, after_change: bool = False) -> int:
    """Send held jobs whose reason has gone back through admission, FIFO per team (priority,
    then age), no more than could plausibly run now: each candidate is checked (advisory, no
    locks) with the jobs released before it counted, so a freed slot does not wake a herd. The
    gate decides anyway. A job still blocked gets its reasons and resume time refreshed.
    `after_change`: a person changed the limits, made an override or moved the zone, so the jobs
    only such a change frees (NEEDS_A_CHANGE) are looked at too; the routine passes (after a
    settle, the ticker's) leave them out, or a hundred of them would hide every job behind."""
    now = timezone.now()
    held = _held_by_limits(team_id)
    if not after_change:
        held = held.exclude(NEEDS_A_CHANGE)
    if due_only:
        held = held.filter(_due(now))
    jobs = list(held.order_by("-priority", "id")[:RELEASE_BATCH])
    if not jobs:
        return 0
    # The jobs queued for a slot or a start (released and not yet claimed among them) come before
    # the held jobs behind them, as admission counts them (budget_held_for_a_slot_before); those
    # held for one in this pass, and those it releases, are counted as it goes.
    ahead = list(Job.objects.filter(budget_queued_for_a_slot(team_id))
                 .order_by("-priority", "id").values_list("priority", "id")[:AHEAD_COUNTED])
    waiting = 0  # jobs of this pass held for a slot or a start, or released
    released = 0
    released_micros = 0
    released_micros_by_handler: dict[str, int] = {}
    cache: dict = {}
    gates: dict[str, list[dict[str, Any]]] = {}
    exclusive_started: set[str] = set()
    for job in jobs:
        blocked = _gate_blocks(job, exclusive_started, gates)
        if blocked:
            if job.hold_reasons[:1] and job.hold_reasons[0].get("kind") not in GATE_KINDS:
                # Held by the budget before; now by a pause or a running twin: say so.
                _rehold(job, blocked, None)
            continue
        # Pulse's own work (a delivery) is not the budget's: no rate or slot holds it back.
        if not _metered(job.handler):
            released += _release(job, exclusive_started)
            continue
        decision = budget_hold_check(job=job, extra_micros=released_micros,
                                     extra_handler_micros=released_micros_by_handler.get(job.handler, 0),
                                     cache=cache, held_before=min(AHEAD_COUNTED, waiting + _ahead_of(job, ahead)))
        if not decision.allowed:
            if decision.resume_at != job.resume_at or _told(decision.reasons) != _told(job.hold_reasons):
                # The limit that binds, or the jobs ahead, or the resume time, changed (a slot
                # came free but the money is still short, a limit was raised, the jobs ahead
                # started): the job says what holds it now, as admission would.
                _rehold(job, decision.reasons, decision.resume_at)
            waiting += decision.reasons[0]["kind"] in SLOT_HOLDS
            continue
        if _release(job, exclusive_started):
            released += 1
            waiting += 1
            released_micros += job.cost_estimate
            released_micros_by_handler[job.handler] = (released_micros_by_handler.get(job.handler, 0)
                                                       + job.cost_estimate)
    if released:
        from jobs.dispatch import dispatch

        dispatch()
    return released


def _release(job: Job, exclusive_started: set[str]) -> int:
    """Send a held job back to the queue (1), unless it moved meanwhile (0)."""
    with transaction.atomic():
        if not _update(job, expected=(Status.PAUSED,), where=HELD_BY_LIMITS, status=Status.QUEUED, hold_reasons=[],
                       resume_at=None, dispatched_at=None):
            return 0
        job_event(job, "released")
        if _is_exclusive(job.handler):
            exclusive_started.add(job.handler)
        return 1


def _metered(name: str) -> bool:
    spec = find_handler(name)
    return spec is None or spec.metered


def _is_exclusive(name: str) -> bool:
    try:
        return get_handler(name).exclusive is not None
    except PulseError:
        return False


def job_release_due() -> int:
    """The ticker's release: every team with held jobs whose resume time has come (or that wait
    for a slot, in case the release after a settle was missed). A retired team's are left: its
    retirement cancelled them, and one held there anyway is not sent back to run."""
    now = timezone.now()
    teams = (
        Job.objects.filter(HELD_BY_LIMITS, status=Status.PAUSED, team__retired_at__isnull=True)
        .exclude(NEEDS_A_CHANGE).filter(_due(now))
        .values_list("team_id", flat=True).distinct().order_by()
    )
    return sum(job_release_held(team_id=team_id, due_only=True) for team_id in list(teams))
