"""Reads of jobs, always scoped to one team."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from budgets.models import HandlerCap
from budgets.money import money_str, money_text
from budgets.selectors import budget_history, spend_chart
from budgets.windows import KINDS
from jobs.dispatch import backlog_ahead
from jobs.error_codes import ErrorCode
from jobs.handlers.registry import Handler, find_public_handler, registered_handlers
from jobs.models import Attempt, Job, JobStat, QueuePause, TaskLog
from pulse_site.charts import Chart
from pulse_site.errors import NotFound, check_choice
from pulse_site.ids import MAX_PAGE, check_page_limit, looks_like_public_id
from pulse_site.paging import cursor_open, cursor_seal, newest_first_windowed
from pulse_site.teams.models import Team

# Finished jobs of the last 24 h the wait and run times are computed from (the newest ones).
TIMING_SAMPLE = 1000
# A backlog position is counted up to this many jobs ahead ("more than 10,000").
AHEAD_CAP = 10_000
# The days of spend a handler's summary adds up (the budget page's history).
SPEND_DAYS = 30


def job_get_for_team(*, team: Team, job_id: str) -> Job:
    """The team's job with that public id, or 404 (also for another team's id)."""
    job = Job.objects.for_team(team).filter(public_id=job_id).first() if looks_like_public_id(job_id, "JB") else None
    if job is None:
        raise NotFound("No such job in this team.")
    return job


@dataclass(frozen=True)
class JobFilter:
    status: str = ""
    handler: str = ""
    source: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    parent: Job | None = None
    origin: str = ""
    # The code the job ended (or its last attempt failed) with: jobs.error_codes.ErrorCode.
    error_code: str = ""
    # (key, value) pairs the payload must hold at its top level; the key is a plain identifier
    # (jobs.forms.parse_search) so it can never become another lookup.
    payload: tuple[tuple[str, str], ...] = ()
    # A filter someone wrote that could not be read (a dashboard's query string with a bad date,
    # status or search word): it matches no job, so nothing is listed, exported or acted on that
    # was not asked for.
    unreadable: bool = False


def jobs_list(*, team: Team, filters: JobFilter, before: str | None = None, limit: int = 50) -> tuple[list[Job], str | None]:
    """Newest first, keyset-paginated: `before` is the cursor the previous page gave, where it
    stopped (pulse_site.paging.cursor_seal), so that a job deleted since (by the client that read
    it, another, or the retention) or committed late below the last one read moves no page."""
    check_choice("status", filters.status, Job.Status.values)
    check_choice("source", filters.source, Job.Source.values)
    check_choice("error_code", filters.error_code, ErrorCode.values)
    check_page_limit(limit)
    rows = jobs_matching(team=team, filters=filters)
    scope = _cursor_scope(team)
    below = cursor_open(scope, before)[0] if before else None
    if jobs_filter_indexed(filters):
        if below is not None:
            rows = rows.filter(pk__lt=below)
        page = list(rows.select_related("parent").order_by("-pk")[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        return page, (cursor_seal(scope, [page[-1].pk]) if more else None)
    return _jobs_list_windowed(team=team, rows=rows, below=below, limit=limit)


def _cursor_scope(team: Team) -> str:
    return f"jobs:{team.pk}"


def jobs_filter_indexed(filters: JobFilter) -> bool:
    """Whether an index yields the matches in id order (job_team_id, job_team_status_id,
    job_team_handler_id, job_team_handler_status_id, job_team_origin_id, job_parent), or, for
    payload terms on PostgreSQL, finds them (job_payload_path): with a million jobs a rare term took
    50-90 ms through the GIN index against 570-800 ms in windows, a common one (region=eu) 55 ms
    down the primary key, the planner choosing between the two."""
    payload_unserved = bool(filters.payload) and connection.vendor != "postgresql"
    return not (payload_unserved or filters.source or filters.error_code or filters.created_after
                or filters.created_before)


def _jobs_list_windowed(*, team: Team, rows: QuerySet[Job], below: int | None, limit: int) -> tuple[list[Job], str | None]:
    """A filter no index serves in id order (payload terms, source, error code, creation time), read
    in bounded windows of the team's jobs (pulse_site.paging)."""
    ids = Job.objects.for_team(team).order_by("-pk").values_list("pk", flat=True)  # job_team_id, index only
    page, carry_on = newest_first_windowed(ids, rows.select_related("parent"), below=below, limit=limit)
    return page, (None if carry_on is None else cursor_seal(_cursor_scope(team), [carry_on]))


def _json_scalar(text: str) -> bool | int | float | None:
    """The boolean or number `text` spells as JSON, if any a payload can hold: not NaN or an
    infinity (json.loads reads "NaN" and "1e400" as such), not an integer beyond 64 bits."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -2**63 <= value < 2**63 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def _payload_match(key: str, text: str) -> Q:
    """`key=42` matches the number 42 or the string "42"; `key=true` the boolean or the string.

    On PostgreSQL as containment (payload @> '{"key": 42}'), which the GIN index job_payload_path
    (jsonb_path_ops, migration 0008) serves; SQLite compares json_extract(payload, '$.key').
    """
    values: list[Any] = [text]
    value = _json_scalar(text)
    if value is not None:
        values.append(value)
    if connection.vendor == "postgresql":
        lookups = [Q(payload__contains={key: v}) for v in values]
    else:
        lookups = [Q(**{f"payload__{key}": v}) for v in values]
    match = lookups[0]
    for other in lookups[1:]:
        match |= other
    return match


def jobs_matching(*, team: Team, filters: JobFilter) -> QuerySet[Job]:
    """The team's jobs that pass the filters, unordered (the list pages them, bulk actions batch them)."""
    rows: QuerySet[Job] = Job.objects.for_team(team)
    if filters.unreadable:
        return rows.none()
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.handler:
        rows = rows.filter(handler=filters.handler)
    if filters.source:
        rows = rows.filter(source=filters.source)
    if filters.created_after:
        rows = rows.filter(created_at__gte=filters.created_after)
    if filters.created_before:
        rows = rows.filter(created_at__lt=filters.created_before)
    if filters.origin:
        rows = rows.filter(origin=filters.origin)
    if filters.error_code:
        rows = rows.filter(error_code=filters.error_code)
    if filters.parent is not None:
        rows = rows.filter(parent=filters.parent)
    for key, text in filters.payload:
        rows = rows.filter(_payload_match(key, text))
    return rows


def job_attempts(job: Job) -> QuerySet[Attempt]:
    return Attempt.objects.filter(job=job).order_by("number")


def job_logs(*, job: Job, stage: str | None = None, task: str | None = None, after: int = 0,
             limit: int = 500) -> list[TaskLog]:
    rows = TaskLog.objects.filter(job=job, pk__gt=after)
    if stage is not None:
        rows = rows.filter(stage=stage)
    if task is not None:
        rows = rows.filter(task=task)
    return list(rows.order_by("pk")[: min(max(1, limit), 1000)])


def job_stages(job: Job) -> list[dict[str, Any]]:
    """Stages in the order they started, each with its tasks (in order) and line counts."""
    stages: dict[str, dict[str, int]] = {}
    for stage, task in (
        TaskLog.objects.filter(job=job).exclude(stage="").order_by("pk").values_list("stage", "task").iterator()
    ):
        tasks = stages.setdefault(stage, {})
        tasks[task] = tasks.get(task, 0) + 1
    return [
        {"stage": stage, "lines": sum(tasks.values()),
         "tasks": [{"task": task, "lines": lines} for task, lines in tasks.items()]}
        for stage, tasks in stages.items()
    ]


def queue_stats(*, team: Team, since_hours: int = 24) -> dict[str, Any]:
    """Live counts of unfinished jobs and hourly rollups of finished ones, per handler.

    Unfinished jobs are counted from the status index (a backlog, bounded); finished ones come
    from JobStat, never from counting the jobs table.
    """
    live = (
        Job.objects.for_team(team).filter(status__in=Job.ACTIVE).values("handler", "status")
        .annotate(n=Count("id")).order_by()
    )
    since = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=since_hours - 1)
    finished = (
        JobStat.objects.filter(team=team, hour__gte=since).values("handler")
        .annotate(completed=Sum("completed"), failed=Sum("failed"), cancelled=Sum("cancelled"), run_ms=Sum("run_ms"))
        .order_by()
    )
    handlers: dict[str, dict[str, int]] = {}
    blank = {status: 0 for status in Job.Status.values}
    for row in live:
        handlers.setdefault(row["handler"], dict(blank))[row["status"]] = row["n"]
    for stat in finished:
        entry = handlers.setdefault(stat["handler"], dict(blank))
        entry.update(completed=stat["completed"], failed=stat["failed"], cancelled=stat["cancelled"])
    totals = dict(blank)
    for entry in handlers.values():
        for status, n in entry.items():
            totals[status] += n
    return {"window_hours": since_hours, "totals": totals, "handlers": handlers}


def system_metrics(*, team: Team, in_flight: dict[str, int] | None = None) -> dict[str, Any]:
    """The shared workers as the team sees them (jobs.executor.team_workers: from their beats;
    `workers_active` is the workers running the team's own jobs), this host's memory, and the
    team's jobs in flight. `in_flight` (the team's jobs per unfinished status) is passed in by a
    caller that has counted them already."""
    import psutil

    from jobs.executor import team_workers

    if in_flight is None:
        in_flight = dict(
            Job.objects.for_team(team).filter(status__in=(Job.Status.QUEUED, Job.Status.RUNNING))
            .values_list("status").annotate(n=Count("id")).order_by()
        )
    running = in_flight.get(Job.Status.RUNNING, 0)
    workers, clusters = team_workers(running=running)
    memory = psutil.virtual_memory()
    return {
        "workers_active": workers.active,
        "workers_total": workers.total,
        "workers_source": workers.source,
        "clusters": clusters,
        "memory_used_gb": round(memory.used / 2**30, 2),
        "memory_total_gb": round(memory.total / 2**30, 2),
        "memory_percent": memory.percent,
        "jobs_queued": in_flight.get(Job.Status.QUEUED, 0),
        "jobs_running": running,
    }


@dataclass(frozen=True)
class Daemon:
    job: Job
    restarts: int
    up_since: datetime | None  # the current attempt's start while it runs; None while it waits to restart


def job_daemons(*, team: Team) -> list[Daemon]:
    """The team's unfinished jobs of daemon handlers, with their restart count and uptime."""
    from jobs.handlers.registry import registered_handlers

    names = [spec.name for spec in registered_handlers(internal=True) if spec.daemon]
    if not names:
        return []
    jobs = list(Job.objects.for_team(team).filter(handler__in=names, status__in=Job.ACTIVE).order_by("id")[:MAX_PAGE])
    starts = dict(
        Attempt.objects.filter(job__in=[j for j in jobs if j.status == Job.Status.RUNNING], finished_at__isnull=True)
        .values_list("job_id", "started_at")
    )
    # Restarts = stops so far: every attempt but the one running now.
    return [Daemon(job=j, restarts=j.attempts - (1 if j.status == Job.Status.RUNNING else 0), up_since=starts.get(j.pk))
            for j in jobs]


@dataclass(frozen=True)
class Timing:
    handler: str
    jobs: int
    wait_median_ms: int
    wait_p95_ms: int
    run_median_ms: int
    run_p95_ms: int


def _rank(sorted_values: list[int], fraction: float) -> int:
    """Nearest-rank percentile of an ascending, non-empty list."""
    index = max(0, min(len(sorted_values) - 1, int(-(-fraction * len(sorted_values) // 1)) - 1))
    return sorted_values[index]


def handler_timings(*, team: Team, now: datetime) -> list[Timing]:
    """Wait (due → first started: from its creation, or the later start it was given) and run
    (the last attempt's start → finished, as the executor's `avg_run_ms`: a retried job's earlier
    tries and the waits between them are not its run) per handler, median and p95, over the newest
    TIMING_SAMPLE jobs finished in the last 24 h (job_team_completed, read backwards; each last
    attempt by attempt_unique_number)."""
    last_start = Attempt.objects.filter(job=OuterRef("pk"), number=OuterRef("attempts")).values("started_at")[:1]
    rows = (
        Job.objects.for_team(team).filter(completed_at__gte=now - timedelta(hours=24), started_at__isnull=False)
        .order_by("-completed_at")
        .annotate(wait=ExpressionWrapper(F("started_at") - Coalesce("due_at", "created_at"), output_field=DurationField()),
                  run=ExpressionWrapper(F("completed_at") - Coalesce(Subquery(last_start), "started_at"),
                                        output_field=DurationField()))
        .values_list("handler", "wait", "run")[:TIMING_SAMPLE]
    )
    waits: dict[str, list[int]] = {}
    runs: dict[str, list[int]] = {}
    for handler, wait, run in rows:
        waits.setdefault(handler, []).append(max(0, int(wait.total_seconds() * 1000)))
        runs.setdefault(handler, []).append(max(0, int(run.total_seconds() * 1000)))
    out = []
    for handler in sorted(waits):
        wait, run = sorted(waits[handler]), sorted(runs[handler])
        out.append(Timing(handler=handler, jobs=len(wait), wait_median_ms=_rank(wait, 0.5),
                          wait_p95_ms=_rank(wait, 0.95), run_median_ms=_rank(run, 0.5), run_p95_ms=_rank(run, 0.95)))
    return out


@dataclass(frozen=True)
class Waiting:
    """Where a queued job that may start now waits: in its team's backlog behind `ahead` of the
    team's jobs (counted up to AHEAD_CAP: `ahead_capped`), or handed to the workers at
    `handed_over_at`, waiting for a free one."""

    ahead: int | None
    ahead_capped: bool
    handed_over_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"ahead": self.ahead, "ahead_capped": self.ahead_capped,
                "handed_over_at": self.handed_over_at.isoformat() if self.handed_over_at else None}


def job_waiting(job: Job, *, now: datetime | None = None) -> Waiting | None:
    """Why a queued job has not started yet when nothing holds it and its start time has come;
    None for any other job (a held one has its reasons, one due later its time)."""
    now = now or timezone.now()
    if job.status != Job.Status.QUEUED or (job.run_after is not None and job.run_after > now):
        return None
    if job.dispatched_at is not None:
        return Waiting(ahead=None, ahead_capped=False, handed_over_at=job.dispatched_at)
    ahead = backlog_ahead(job, now, cap=AHEAD_CAP + 1)
    return Waiting(ahead=min(ahead, AHEAD_CAP), ahead_capped=ahead > AHEAD_CAP, handed_over_at=None)


@dataclass(frozen=True)
class HandlerSummary:
    """One registered handler as a team sees it: its jobs now and over the last 24 h, its run
    times, the team's spending cap on it and an operator's pause, if any."""

    handler: Handler
    queued: int
    running: int
    held: int
    completed: int
    failed: int
    cancelled: int
    timing: Timing | None
    cap: HandlerCap | None
    pause: QueuePause | None
    # (error code, jobs) of the failures in the last 24 h, the commonest first.
    failures: tuple[tuple[str, int], ...] = ()
    # Charged to the team's budget (micros): today and the last 30 days, in the budget's days.
    spent_today: int = 0
    spent_30_days: int = 0
    # Its spend per day under the cap's daily limit: only in the summary of one handler (its page).
    spend_chart: Chart | None = None

    # The API's (plain digits); pages group them with the money filter.
    @property
    def spent_today_text(self) -> str:
        return money_str(self.spent_today) or "0"

    @property
    def spent_30_days_text(self) -> str:
        return money_str(self.spent_30_days) or "0"

    @property
    def success_rate(self) -> float | None:
        """Completed of completed + failed in the last 24 h, in %; None before any finished."""
        ended = self.completed + self.failed
        return None if ended == 0 else round(100 * self.completed / ended, 1)

    @property
    def cap_text(self) -> str:
        if self.cap is None:
            return ""
        return ", ".join(f"{money_text(self.cap.limit_for(kind))} a {kind}" for kind in KINDS
                         if self.cap.limit_for(kind) is not None)


def _commonest(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def handler_failures(*, team: Team, now: datetime) -> dict[str, tuple[tuple[str, int], ...]]:
    """Per handler, the error codes of the jobs that failed in the last 24 h with how many of each,
    the commonest first; among the team's newest TIMING_SAMPLE failed jobs (job_team_status_id, so
    a day of a million completed jobs is never walked to find the few that failed)."""
    rows = (
        Job.objects.for_team(team).filter(status=Job.Status.FAILED).order_by("-pk")
        .values_list("handler", "error_code", "completed_at")[:TIMING_SAMPLE]
    )
    since = now - timedelta(hours=24)
    counts: dict[str, Counter[str]] = {}
    for handler, code, completed_at in rows:
        if code and completed_at and completed_at >= since:
            counts.setdefault(handler, Counter())[code] += 1
    return {handler: _commonest(c) for handler, c in counts.items()}


def failure_codes(*, team: Team, now: datetime) -> tuple[tuple[str, int], ...]:
    """The error codes of the team's failures in the last 24 h, every handler together."""
    total: Counter[str] = Counter()
    for per_handler in handler_failures(team=team, now=now).values():
        total.update(dict(per_handler))
    return _commonest(total)


def handler_summaries(*, team: Team, now: datetime | None = None, name: str | None = None) -> list[HandlerSummary]:
    """Every handler a team may name (or the one called `name`) with the team's figures: unfinished jobs
    from the status index, finished ones from the hourly rollups (queue_stats), run times from the
    newest finished jobs (handler_timings); all bounded whatever the history."""
    now = now or timezone.now()
    found = find_public_handler(name) if name is not None else None
    handlers = registered_handlers() if name is None else [found] if found is not None else []
    counts = queue_stats(team=team)["handlers"]
    timings = {t.handler: t for t in handler_timings(team=team, now=now)}
    caps = {c.handler: c for c in HandlerCap.objects.filter(team=team)}
    pauses = {p.handler: p for p in QueuePause.objects.filter(scope=QueuePause.Scope.HANDLER, ended_at__isnull=True)}
    failures = handler_failures(team=team, now=now)
    history = budget_history(team=team, days=SPEND_DAYS)
    days = history["days"]
    out = []
    for handler in handlers:
        n = counts.get(handler.name, {})
        out.append(HandlerSummary(
            handler=handler, queued=n.get(Job.Status.QUEUED, 0), running=n.get(Job.Status.RUNNING, 0),
            held=n.get(Job.Status.PAUSED, 0), completed=n.get(Job.Status.COMPLETED, 0),
            failed=n.get(Job.Status.FAILED, 0), cancelled=n.get(Job.Status.CANCELLED, 0),
            timing=timings.get(handler.name), cap=caps.get(handler.name), pause=pauses.get(handler.name),
            failures=failures.get(handler.name, ()),
            spent_today=days[-1]["handlers"].get(handler.name, 0),
            spent_30_days=sum(day["handlers"].get(handler.name, 0) for day in days),
            spend_chart=None if name is None else spend_chart(history, handler=handler.name,
                                                              cap=caps.get(handler.name)),
        ))
    return out


def handler_summary(*, team: Team, name: str) -> HandlerSummary:
    """One registered handler's summary, or 404 for a name no handler has."""
    found = handler_summaries(team=team, name=name)
    if not found:
        raise NotFound(f"No handler is called '{name}'.")
    return found[0]
