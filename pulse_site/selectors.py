"""Reads for the pages that belong to no single app: the overview, whose every figure is bounded
(indexes on time, hourly rollups, capped samples) so it stays fast with millions of jobs."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.db.models import Count, Sum
from django.db.models.functions import TruncMinute
from django.urls import reverse
from django.utils import timezone

from budgets.selectors import budget_history, spend_chart
from jobs.models import Job, JobStat
from jobs.selectors import Timing, failure_codes, handler_timings, job_get_for_team, system_metrics
from pulse_site.activity import ActivityRow, activity_rows
from pulse_site.charts import Bucket, Chart, stacked_bars
from pulse_site.errors import NotFound
from pulse_site.ids import looks_like_public_id
from pulse_site.live.selectors import Audience, event_last_id
from pulse_site.models import UserPreference
from pulse_site.teams.models import Membership, Team
from schedules.models import Schedule
from schedules.selectors import execution_get_for_team, schedule_get_for_team, schedule_next_runs

RECENT_FAILURES = 10
# Held jobs whose reasons are tallied: the main reasons, not a census of a huge backlog.
HELD_SAMPLE = 500
UPCOMING_LIMIT = 20
OUTCOMES = ["completed", "failed"]


@dataclass(frozen=True)
class Overview:
    team: Team
    members_count: int
    activity: list[ActivityRow]
    everything: bool
    # Where the live feed resumes: the newest event when the page was read, shown or not.
    last_event_id: int


def overview_for_team(team: Team, *, audience: Audience, everything: bool = False) -> Overview:
    # The event id the page resumes from is read before what it shows (see jobs.views._live_since).
    last_event_id = event_last_id(team_id=team.pk)
    return Overview(
        team=team,
        members_count=Membership.objects.filter(team=team).count(),
        activity=activity_rows(team=team, audience=audience, everything=everything),
        everything=everything,
        last_event_id=last_event_id,
    )


# --- Live counters --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Counters:
    queued: int
    running: int
    held: int
    held_reasons: list[tuple[str, int]]
    completed_hour: int
    failed_hour: int
    completed_day: int
    failed_day: int


def _per_minute(team: Team, now: datetime) -> dict[tuple[datetime, str], int]:
    """Jobs finished (completed or failed) per minute in the last hour.

    Served by job_team_completed: WHERE team_id = ? AND completed_at >= now - 1 h; at most an
    hour of finished jobs is read, grouped to 120 rows.
    """
    since = now - timedelta(hours=1)
    rows = (
        Job.objects.for_team(team).filter(completed_at__gte=since, status__in=OUTCOMES)
        .annotate(minute=TruncMinute("completed_at")).values("minute", "status").annotate(n=Count("id")).order_by()
    )
    return {(row["minute"], row["status"]): row["n"] for row in rows}


def _hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _live_counts(team: Team) -> dict[str, int]:
    """Unfinished jobs per status: a backlog, counted from the job_team_status_id index."""
    return dict(
        Job.objects.for_team(team).filter(status__in=Job.ACTIVE).values_list("status")
        .annotate(n=Count("id")).order_by()
    )


def _hourly(team: Team, since: datetime) -> dict[datetime, dict[str, int]]:
    """Finished jobs per hour from `since`, all handlers summed.

    Served by jobstat_team_hour: 168 hours × the team's handlers, grouped to 168 rows.
    """
    return {
        row["hour"]: {"completed": row["completed"] or 0, "failed": row["failed"] or 0}
        for row in JobStat.objects.filter(team=team, hour__gte=since).values("hour")
        .annotate(completed=Sum("completed"), failed=Sum("failed")).order_by()
    }


def overview_counters(*, team: Team, now: datetime | None = None, minute: dict[tuple[datetime, str], int] | None = None,
                      live: dict[str, int] | None = None,
                      hourly: dict[datetime, dict[str, int]] | None = None) -> Counters:
    """`minute`, `live` and `hourly` (at least the last 24 hours) are passed in when the caller has
    read them already for another panel of the same page."""
    now = now or timezone.now()
    live = _live_counts(team) if live is None else live
    reasons: Counter[str] = Counter()
    for hold in (
        Job.objects.for_team(team).filter(status=Job.Status.PAUSED).order_by("-pk")
        .values_list("hold_reasons", flat=True)[:HELD_SAMPLE]
    ):
        first = hold[0] if isinstance(hold, list) and hold and isinstance(hold[0], dict) else {}
        reasons[str(first.get("kind") or "manual")] += 1
    minute = _per_minute(team, now) if minute is None else minute
    day_start = _hour_start(now) - timedelta(hours=23)
    if hourly is None:
        day = JobStat.objects.filter(team=team, hour__gte=day_start).aggregate(
            completed=Sum("completed"), failed=Sum("failed"))
    else:
        day = {s: sum(row[s] for hour, row in hourly.items() if hour >= day_start) for s in OUTCOMES}
    return Counters(
        queued=live.get(Job.Status.QUEUED, 0), running=live.get(Job.Status.RUNNING, 0),
        held=live.get(Job.Status.PAUSED, 0), held_reasons=sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3],
        completed_hour=sum(n for (_, status), n in minute.items() if status == "completed"),
        failed_hour=sum(n for (_, status), n in minute.items() if status == "failed"),
        completed_day=day["completed"] or 0, failed_day=day["failed"] or 0,
    )


# --- Charts ---------------------------------------------------------------------------------------

def chart_last_hour(*, team: Team, now: datetime, minute: dict[tuple[datetime, str], int] | None = None) -> Chart:
    minute = _per_minute(team, now) if minute is None else minute
    zone = ZoneInfo(team.time_zone)  # labelled in the team's zone, as the rest of the page
    first = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    buckets = []
    for offset in range(60):
        at = first + timedelta(minutes=offset)
        buckets.append(Bucket(label=at.astimezone(zone).strftime("%H:%M"),
                              values={s: minute.get((at, s), 0) for s in OUTCOMES}))
    return stacked_bars(title="Jobs per minute, last hour", buckets=buckets, series=OUTCOMES)


def _week_start(now: datetime) -> datetime:
    return _hour_start(now) - timedelta(hours=167)


def chart_last_week(*, team: Team, now: datetime, hourly: dict[datetime, dict[str, int]] | None = None) -> Chart:
    first = _week_start(now)
    zone = ZoneInfo(team.time_zone)  # hours of a zone 5:45 ahead read "21:45": the rollups are UTC hours
    rows = _hourly(team, first) if hourly is None else hourly
    buckets = []
    for offset in range(168):
        at = first + timedelta(hours=offset)
        row = rows.get(at, {})
        buckets.append(Bucket(label=at.astimezone(zone).strftime("%a %d %H:%M"),
                              values={s: row.get(s) or 0 for s in OUTCOMES}))
    return stacked_bars(title="Jobs per hour, last 7 days", buckets=buckets, series=OUTCOMES)


def chart_spend(*, team: Team) -> Chart:
    return spend_chart(budget_history(team=team, days=30))


@dataclass(frozen=True)
class Charts:
    last_hour: Chart
    last_week: Chart
    spend: Chart
    timings: list[Timing]
    at: datetime


def overview_charts(*, team: Team, now: datetime | None = None, minute: dict[tuple[datetime, str], int] | None = None,
                    hourly: dict[datetime, dict[str, int]] | None = None) -> Charts:
    now = now or timezone.now()
    return Charts(last_hour=chart_last_hour(team=team, now=now, minute=minute),
                  last_week=chart_last_week(team=team, now=now, hourly=hourly),
                  spend=chart_spend(team=team), timings=handler_timings(team=team, now=now), at=now)


# --- Lists ----------------------------------------------------------------------------------------

def recent_failures(*, team: Team, limit: int = RECENT_FAILURES) -> list[Job]:
    # job_team_status_id: WHERE team_id = ? AND status = 'failed' ORDER BY id DESC LIMIT 10.
    return list(Job.objects.for_team(team).filter(status=Job.Status.FAILED).order_by("-pk")[:limit])


@dataclass(frozen=True)
class UpcomingRun:
    schedule: Schedule
    at: datetime


def upcoming_runs(*, team: Team, now: datetime, within: timedelta = timedelta(hours=1)) -> list[UpcomingRun]:
    """The fire times of the next hour, soonest first, at most UPCOMING_LIMIT of them."""
    horizon = now + within
    schedules = (
        Schedule.objects.for_team(team).filter(enabled=True, broken_reason="", next_run_at__lte=horizon)
        .order_by("next_run_at")[:UPCOMING_LIMIT]
    )
    runs = [
        UpcomingRun(schedule, at) for schedule in schedules
        for at in schedule_next_runs(schedule, count=UPCOMING_LIMIT) if at <= horizon
    ]
    return sorted(runs, key=lambda r: (r.at, r.schedule.name))[:UPCOMING_LIMIT]


@dataclass(frozen=True)
class Pulse:
    """Everything on the overview that moves with the team's events (one fragment)."""

    counters: Counters
    failures: list[Job]
    # (error code, jobs) of the last 24 h's failures, the commonest first.
    failure_codes: tuple[tuple[str, int], ...]
    upcoming: list[UpcomingRun]
    workers: dict[str, Any]
    at: datetime


def overview_pulse(*, team: Team, now: datetime | None = None, minute: dict[tuple[datetime, str], int] | None = None,
                  hourly: dict[datetime, dict[str, int]] | None = None) -> Pulse:
    now = now or timezone.now()
    live = _live_counts(team)  # the counters and the workers panel both show it
    return Pulse(counters=overview_counters(team=team, now=now, minute=minute, live=live, hourly=hourly),
                 failures=recent_failures(team=team), failure_codes=failure_codes(team=team, now=now),
                 upcoming=upcoming_runs(team=team, now=now),
                 workers=system_metrics(team=team, in_flight=live), at=now)


def overview_page(*, team: Team, now: datetime | None = None) -> tuple[Pulse, Charts]:
    """Both live halves of the overview for its first render, at one moment: the last hour per
    minute and the last week per hour are read once for the counters and the charts together."""
    now = now or timezone.now()
    minute = _per_minute(team, now)
    hourly = _hourly(team, _week_start(now))
    return (overview_pulse(team=team, now=now, minute=minute, hourly=hourly),
            overview_charts(team=team, now=now, minute=minute, hourly=hourly))


# --- Search ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchResult:
    url: str
    not_found: bool = False


# A single word that starts like one of the ids the search opens.
ID_SHAPED = re.compile(r"(?i)(JB|SP|EX)_\S*")


def search_resolve(*, team: Team, query: str) -> SearchResult:
    """Where the header's search box goes: a JB_/SP_ id to its page, an EX_ id to its job (or its
    schedule when it made none), another team's id like no id at all; any other text filters the
    jobs list (jobs.forms.parse_search says how)."""
    query = query.strip()
    if not query:
        return SearchResult(reverse("jobs:list"))
    if ID_SHAPED.fullmatch(query):
        # An id typed in lower case is the same id; one mistyped is no id of this team's, not
        # a word for the jobs list to refuse ("is not a status, a handler …").
        query = query.upper()
        if not looks_like_public_id(query):
            return SearchResult("", not_found=True)
    try:
        if looks_like_public_id(query, "JB"):
            return SearchResult(reverse("jobs:detail", args=[job_get_for_team(team=team, job_id=query).public_id]))
        if looks_like_public_id(query, "SP"):
            schedule = schedule_get_for_team(team=team, schedule_id=query)
            return SearchResult(reverse("schedules:detail", args=[schedule.public_id]))
        if looks_like_public_id(query, "EX"):
            execution = execution_get_for_team(team=team, execution_id=query)
            if execution.job is not None:
                return SearchResult(reverse("jobs:detail", args=[execution.job.public_id]))
            return SearchResult(reverse("schedules:detail", args=[execution.schedule.public_id]))
    except NotFound:
        return SearchResult("", not_found=True)
    return SearchResult(reverse("jobs:list") + "?" + urlencode({"q": query}))


def preference_theme(user: Any) -> str:
    """The viewer's theme: "" (follow the system), "light" or "dark"."""
    if not getattr(user, "is_authenticated", False):
        return ""
    return UserPreference.objects.filter(user=user).values_list("theme", flat=True).first() or ""
