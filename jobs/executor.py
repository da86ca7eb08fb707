"""Executor status and stats: is the queue running, what is it doing, how well has it done.

One team's view (`executor_status`, for its members: the overview panel and GET /api/v1/executor/)
and the operators' view of every team (`executor_system`, the staff system page). Every figure is
bounded, whatever the size of the jobs table:

- unfinished jobs (running, queued, held) are counted from the status indexes: a backlog;
- finished jobs (processed, succeeded, failed, average run time, success rate) come from the
  hourly JobStat rollups, never from counting the jobs table: the last 24 hours' rows on every
  call, the hours before summed once an hour and cached;
- jobs per second over the last minute counts `completed_at` in the last 60 s through the
  job_team_completed index (capped); over the last hour it is read from the rollups of this hour
  and the previous one (the part of the previous hour inside the window, pro rata);
- the last finished job is one backward step of job_team_completed;
- workers, their uptime and memory are the live WorkerBeat rows (jobs.beats).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from jobs.beats import live_after
from jobs.models import Job, JobStat, QueuePause, WorkerBeat
from pulse_site.teams.models import Team

log = logging.getLogger("pulse.jobs")
Status = Job.Status
Scope = QueuePause.Scope

# The last minute's finished jobs are counted up to this many (230 jobs/s, the measured
# single-machine throughput, is 13,800 a minute): the count stays an index range of bounded size.
MINUTE_CAP = 100_000
# Teams listed on the system page, most active first.
SYSTEM_TEAMS = 500


@dataclass(frozen=True)
class Totals:
    """Finished jobs over a period, from the rollups."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    run_ms: int = 0

    @property
    def processed(self) -> int:
        return self.completed + self.failed + self.cancelled

    @property
    def avg_run_ms(self) -> int | None:
        """Mean run time of the finished jobs' last attempts (a job cancelled before it ran adds 0 ms)."""
        return round(self.run_ms / self.processed) if self.processed else None

    @property
    def success_rate(self) -> float | None:
        """Completed out of completed + failed (cancelled jobs are neither), 0 to 1."""
        decided = self.completed + self.failed
        return round(self.completed / decided, 4) if decided else None

    def __add__(self, other: Totals) -> Totals:
        return Totals(self.completed + other.completed, self.failed + other.failed,
                      self.cancelled + other.cancelled, self.run_ms + other.run_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"processed": self.processed, "succeeded": self.completed, "failed": self.failed,
                "cancelled": self.cancelled, "avg_run_ms": self.avg_run_ms, "success_rate": self.success_rate}


@dataclass(frozen=True)
class Worker:
    name: str
    cluster: str
    started_at: datetime
    cluster_started_at: datetime | None
    seen_at: datetime
    rss_bytes: int
    alive: bool
    job: str = ""  # the job it runs now (operators only)
    team: str = ""
    # What its uptime and its cluster's run to: now while alive; a gone worker's last beat, and
    # for a cluster none of whose workers beats any more, the last beat of any of them.
    up_to: datetime | None = None
    cluster_up_to: datetime | None = None

    def uptime_seconds(self, now: datetime) -> int:
        return max(0, int(((self.up_to or now) - self.started_at).total_seconds()))


@dataclass(frozen=True)
class Workers:
    total: int  # live worker processes (every team shares them)
    active: int  # for a team: workers running its jobs; for operators: workers running any job
    source: str  # "beats" (counted from WorkerBeat) or "configured" (no worker has beaten yet)
    up_since: datetime | None  # start of the longest-running live cluster
    rss_bytes: int  # the live workers' memory, together

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {"total": self.total, "active": self.active, "counted_from": self.source,
                "up_since": self.up_since.isoformat() if self.up_since else None,
                "uptime_seconds": int((now - self.up_since).total_seconds()) if self.up_since else None,
                "memory_rss_bytes": self.rss_bytes}


@dataclass(frozen=True)
class Rates:
    last_minute: int  # jobs finished in the last 60 s
    last_hour: float  # jobs finished in the last 60 min (pro rata from the rollups)

    @property
    def per_second_minute(self) -> float:
        return round(self.last_minute / 60, 4)

    @property
    def per_second_hour(self) -> float:
        return round(self.last_hour / 3600, 4)


@dataclass(frozen=True)
class ExecutorStatus:
    at: datetime
    paused: bool  # the team's own pause or every team's: nothing new starts
    pauses: list[QueuePause]  # every pause in force that holds these jobs (handler pauses too)
    running: int
    queued: int
    held: int
    all_time: Totals
    last_day: Totals
    rates: Rates
    last_finished_at: datetime | None
    workers: Workers
    team: Team | None = None
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return "paused" if self.paused else "running"

    @property
    def backlog(self) -> int:
        return self.queued + self.held

    @property
    def paused_handlers(self) -> list[str]:
        return sorted(p.handler for p in self.pauses if p.scope == Scope.HANDLER)

    def as_dict(self) -> dict[str, Any]:
        from jobs.pausing import queue_pause_as_dict

        return {
            "at": self.at.isoformat(),
            "state": self.state,
            "pauses": [queue_pause_as_dict(p) for p in self.pauses],
            "paused_handlers": self.paused_handlers,
            "active": self.running,
            "queued": self.queued,
            "held": self.held,
            "backlog": self.backlog,
            "all_time": self.all_time.as_dict(),
            "last_24h": self.last_day.as_dict(),
            "jobs_last_minute": self.rates.last_minute,
            "jobs_per_second_minute": self.rates.per_second_minute,
            "jobs_per_second_hour": self.rates.per_second_hour,
            "last_finished_at": self.last_finished_at.isoformat() if self.last_finished_at else None,
            "workers": self.workers.as_dict(self.at),
            "memory": self.memory,
        }


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


COLUMNS = ("completed", "failed", "cancelled", "run_ms")


def _recent_sums(now: datetime) -> dict[str, Any]:
    """Sum() columns of the last 24 hours' rollups: the day, this hour and the previous one."""
    this_hour = _hour(now)
    sums: dict[str, Any] = {}
    for column in COLUMNS:
        sums[f"day_{column}"] = Sum(column)
        sums[f"now_{column}"] = Sum(column, filter=Q(hour=this_hour))
        sums[f"prev_{column}"] = Sum(column, filter=Q(hour=this_hour - timedelta(hours=1)))
    return sums


def _day_start(now: datetime) -> datetime:
    return _hour(now) - timedelta(hours=23)


def past_sums_key(team: Team | None, now: datetime) -> str:
    return f"pulse:jobstat-past:{team.public_id if team else 'all'}:{_hour(now):%Y%m%d%H}"


def _past_sums(team: Team | None, now: datetime) -> dict[Any, dict[str, int]]:
    """All-time sums of the rollups before this hour, per team id (one team, or every team).

    Those rows never change once their hour is over (a job is counted in the hour it finishes),
    so they are summed once an hour and cached; a year of one team's history (8,760 hours × its
    handlers) took 67 ms to sum on PostgreSQL, too much for a fragment re-rendered every 2 s.
    The key names the team by its public id: a reused integer key never reads another's sums.
    """
    this_hour = _hour(now)
    key = past_sums_key(team, now)
    try:
        cached = cache.get(key)
    except Exception:  # the cache being unreachable costs a slower sum, never the figures
        cached = None
    if cached is not None:
        return cached
    rows = JobStat.objects.filter(hour__lt=this_hour)
    if team is not None:
        rows = rows.filter(team=team)
    # An alias may not shadow the column it sums: all_completed, not completed.
    summed: list[dict[str, Any]] = [
        dict(row) for row in rows.values("team").annotate(**{f"all_{c}": Sum(c) for c in COLUMNS}).order_by()]
    sums = {row["team"]: {column: int(row[f"all_{column}"] or 0) for column in COLUMNS} for row in summed}
    try:
        cache.set(key, sums, timeout=3600 + 300)
    except Exception:
        log.warning("could not cache the rollup sums under %s", key, exc_info=True)
    return sums


def _totals(row: dict[str, Any], prefix: str = "") -> Totals:
    return Totals(*(int(row.get(f"{prefix}{c}") or 0) for c in COLUMNS))


def _all_time(past: dict[str, int] | None, recent: dict[str, Any]) -> Totals:
    """Before this hour (cached) plus this hour so far."""
    return _totals(past or {}) + _totals(recent, "now_")


def _last_hour(row: dict[str, Any], now: datetime) -> float:
    # The rollups are hourly: this hour so far, plus the share of the previous hour that is
    # still inside the 60-minute window (assumed spread evenly over that hour).
    current = sum(int(row.get(f"now_{c}") or 0) for c in ("completed", "failed", "cancelled"))
    previous = sum(int(row.get(f"prev_{c}") or 0) for c in ("completed", "failed", "cancelled"))
    inside = 1 - (now - _hour(now)).total_seconds() / 3600
    return round(current + previous * inside, 1)


def _host_memory() -> dict[str, Any]:
    import psutil

    memory = psutil.virtual_memory()
    return {"host_used_bytes": int(memory.used), "host_total_bytes": int(memory.total),
            "host_percent": float(memory.percent)}


def _beats(now: datetime) -> list[WorkerBeat]:
    # A handful of rows (one per worker process; the ticker prunes the gone).
    return list(WorkerBeat.objects.order_by("cluster", "name"))


def team_workers(*, running: int, now: datetime | None = None) -> tuple[Workers, list[dict[str, Any]]]:
    """The shared workers as one team sees them (its `running` jobs each occupy one; how busy the
    others are is other teams' business), and their clusters: from the workers' beats, as the
    executor counts them, so every page and answer gives the same figures."""
    now = now or timezone.now()
    beats = _beats(now)
    alive = [b for b in beats if b.seen_at >= live_after(now)]
    clusters: dict[str, list[WorkerBeat]] = {}
    for beat in alive:
        clusters.setdefault(beat.cluster, []).append(beat)
    return _workers(beats, active=running, now=now), [
        {"id": cluster, "host": cluster.rpartition(":")[0] or cluster, "workers": len(members),
         "uptime_seconds": int((now - min(b.cluster_started_at or b.started_at for b in members)).total_seconds())}
        for cluster, members in sorted(clusters.items())]


def _workers(beats: list[WorkerBeat], *, active: int, now: datetime) -> Workers:
    alive = [b for b in beats if b.seen_at >= live_after(now)]
    starts = [b.cluster_started_at or b.started_at for b in alive]
    if not alive:
        return Workers(total=settings.PULSE_WORKERS, active=active, source="configured", up_since=None, rss_bytes=0)
    return Workers(total=len(alive), active=active, source="beats", up_since=min(starts),
                   rss_bytes=sum(b.rss_bytes for b in alive))


def executor_status(*, team: Team, now: datetime | None = None) -> ExecutorStatus:
    """The team's executor: its queue's state, its jobs, its throughput, and the shared workers.

    Seven queries: unfinished jobs by status, the rollups, the last minute, the last finished job,
    the pauses in force, the worker beats (and the host's memory, no query).
    """
    from jobs.pausing import queue_pauses_for_team

    now = now or timezone.now()
    jobs = Job.objects.for_team(team)
    # Served by job_team_status_id: WHERE team_id = ? AND status IN (queued, paused, running).
    live = dict(jobs.filter(status__in=Job.ACTIVE).values_list("status").annotate(n=Count("id")).order_by())
    # Served by jobstat_team_hour: the last 24 hours' rollup rows (24 × the team's handlers);
    # the hours before this one are summed once an hour (_past_sums).
    stats = JobStat.objects.filter(team=team, hour__gte=_day_start(now)).aggregate(**_recent_sums(now))
    past = _past_sums(team, now).get(team.pk)
    # Served by job_team_completed: WHERE team_id = ? AND completed_at >= now - 60 s, capped.
    minute = jobs.filter(completed_at__gte=now - timedelta(seconds=60)).order_by()[:MINUTE_CAP].count()
    # One backward step of job_team_completed (IS NOT NULL is an index condition).
    last = (jobs.filter(completed_at__isnull=False).order_by("-completed_at")
            .values_list("completed_at", flat=True).first())
    pauses = queue_pauses_for_team(team=team)
    running = live.get(Status.RUNNING, 0)
    return ExecutorStatus(
        at=now, team=team,
        paused=any(p.scope in (Scope.TEAM, Scope.GLOBAL) for p in pauses), pauses=pauses,
        running=running, queued=live.get(Status.QUEUED, 0), held=live.get(Status.PAUSED, 0),
        all_time=_all_time(past, stats), last_day=_totals(stats, "day_"),
        rates=Rates(last_minute=minute, last_hour=_last_hour(stats, now)),
        last_finished_at=last,
        # Each running job occupies one worker: the team sees how many run its jobs, not others'.
        workers=_workers(_beats(now), active=running, now=now),
        memory=_host_memory(),
    )


@dataclass(frozen=True)
class SystemStatus:
    """Every team's executor for operators: the totals, one row per team, workers, global pauses."""

    overall: ExecutorStatus
    teams: list[ExecutorStatus]
    workers: list[Worker]
    pauses: list[QueuePause]  # operators' pauses in force: every team's, or one handler's everywhere
    teams_capped: bool


def executor_system(*, now: datetime | None = None) -> SystemStatus:
    """Six queries, whatever the number of teams and jobs (teams listed up to SYSTEM_TEAMS): the
    unfinished jobs, the rollups, the teams with their last minute and last finished job, the
    pauses in force, the worker beats and the running jobs' workers."""
    now = now or timezone.now()
    # Served by job_status_dispatched (status first): the unfinished jobs of every team.
    live: dict[int, dict[str, int]] = {}
    for counted in Job.objects.filter(status__in=Job.ACTIVE).values("team_id", "status").annotate(n=Count("id")).order_by():
        live.setdefault(counted["team_id"], {})[counted["status"]] = counted["n"]
    stats: dict[int, dict[str, Any]] = {
        summed["team"]: dict(summed) for summed in JobStat.objects.filter(hour__gte=_day_start(now)).values("team")
        .annotate(**_recent_sums(now)).order_by()}
    past = _past_sums(None, now)
    recent = Job.objects.filter(team=OuterRef("pk"))
    teams = list(
        Team.objects.filter(Q(pk__in=list(live)) | Q(pk__in=list(stats)) | Q(pk__in=list(past))
                            | Q(queue_pauses__ended_at__isnull=True))
        .distinct()
        .annotate(
            # Per team, a bounded range of job_team_completed (correlated, one statement).
            minute=Subquery(recent.filter(completed_at__gte=now - timedelta(seconds=60)).order_by()
                            .values("team").annotate(n=Count("id")).values("n")[:1]),
            last_finished=Subquery(recent.filter(completed_at__isnull=False).order_by("-completed_at")
                                   .values("completed_at")[:1]),
        )
        .order_by("name")[: SYSTEM_TEAMS + 1]
    )
    capped = len(teams) > SYSTEM_TEAMS
    teams = teams[:SYSTEM_TEAMS]
    in_force = list(QueuePause.objects.filter(ended_at__isnull=True).select_related("team").order_by("created_at"))
    everywhere = [p for p in in_force if p.scope != Scope.TEAM]
    beats = _beats(now)
    memory = _host_memory()
    busy = {w: (job, team) for w, job, team in Job.objects.filter(status=Status.RUNNING)
            .values_list("worker", "public_id", "team__name")}
    rows = []
    for team in teams:
        counts = live.get(team.pk, {})
        row = stats.get(team.pk, {})
        pauses = [p for p in in_force if p.scope != Scope.TEAM or p.team_id == team.pk]
        running = counts.get(Status.RUNNING, 0)
        rows.append(ExecutorStatus(
            at=now, team=team, paused=any(p.scope in (Scope.TEAM, Scope.GLOBAL) for p in pauses), pauses=pauses,
            running=running, queued=counts.get(Status.QUEUED, 0), held=counts.get(Status.PAUSED, 0),
            all_time=_all_time(past.get(team.pk), row), last_day=_totals(row, "day_"),
            rates=Rates(last_minute=team.minute or 0, last_hour=_last_hour(row, now)),
            last_finished_at=team.last_finished,
            workers=_workers(beats, active=running, now=now), memory=memory,
        ))
    running_all = sum(c.get(Status.RUNNING, 0) for c in live.values())
    overall = ExecutorStatus(
        at=now, paused=any(p.scope == Scope.GLOBAL for p in everywhere), pauses=everywhere,
        running=running_all,
        queued=sum(c.get(Status.QUEUED, 0) for c in live.values()),
        held=sum(c.get(Status.PAUSED, 0) for c in live.values()),
        all_time=sum((_totals(r) for r in past.values()), Totals()) + sum((_totals(r, "now_") for r in stats.values()),
                                                                          Totals()),
        last_day=sum((_totals(r, "day_") for r in stats.values()), Totals()),
        rates=Rates(last_minute=sum(r.rates.last_minute for r in rows),
                    last_hour=round(sum(_last_hour(r, now) for r in stats.values()), 1)),
        last_finished_at=max((r.last_finished_at for r in rows if r.last_finished_at), default=None),
        workers=_workers(beats, active=running_all, now=now), memory=memory,
    )
    alive_after = live_after(now)
    cluster_seen: dict[str, datetime] = {}
    for b in beats:
        cluster_seen[b.cluster] = max(cluster_seen.get(b.cluster, b.seen_at), b.seen_at)
    workers = [
        Worker(name=b.name, cluster=b.cluster, started_at=b.started_at, cluster_started_at=b.cluster_started_at,
               seen_at=b.seen_at, rss_bytes=b.rss_bytes, alive=b.seen_at >= alive_after,
               job=busy.get(b.name, ("", ""))[0], team=busy.get(b.name, ("", ""))[1],
               up_to=now if b.seen_at >= alive_after else b.seen_at,
               cluster_up_to=now if cluster_seen[b.cluster] >= alive_after else cluster_seen[b.cluster])
        for b in beats
    ]
    return SystemStatus(overall=overall, teams=rows, workers=workers, pauses=everywhere, teams_capped=capped)
