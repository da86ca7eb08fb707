"""Reads of schedules and executions, always scoped to one team."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
from functools import cached_property
from typing import Any

from django.db.models import F, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

from budgets.money import money_str, money_text
from budgets.services import budget_policy_get, policy_zone
from jobs.handlers.registry import find_handler, with_defaults
from jobs.models import Job
from pulse_site.errors import FieldErrors, NotFound, ValidationError, check_choice
from pulse_site.ids import check_page_limit, looks_like_public_id
from pulse_site.paging import cursor_open, cursor_seal
from pulse_site.teams.models import Team
from schedules import cron as cronlib
from schedules.models import Execution, Schedule

STRIP = 10
# Schedules on one page of the dashboard's list (the API's default is PageQuery's 50).
SCHEDULES_PAGE = 100
# An execution's status is its job's, or its own outcome when it made no job ("failed" is both).
EXECUTION_STATUSES = list(dict.fromkeys([*Job.Status.values, *Execution.Status.values]))


def schedule_get_for_team(*, team: Team, schedule_id: str) -> Schedule:
    """The team's schedule with that public id, or 404 (also for another team's id)."""
    schedule = (
        Schedule.objects.for_team(team).filter(public_id=schedule_id).select_related("team").first()
        if looks_like_public_id(schedule_id, "SP") else None
    )
    if schedule is None:
        raise NotFound("No such schedule in this team.")
    return schedule


def execution_get_for_team(*, team: Team, execution_id: str) -> Execution:
    execution = (
        Execution.objects.filter(team=team, public_id=execution_id).select_related("job", "schedule").first()
        if looks_like_public_id(execution_id, "EX") else None
    )
    if execution is None:
        raise NotFound("No such execution in this team.")
    return execution


@dataclass
class ScheduleRow:
    """A schedule with what the list shows: its description and its latest executions."""

    schedule: Schedule
    recent: list[Execution] = field(default_factory=list)  # newest first

    @property
    def description(self) -> str:
        return schedule_description(self.schedule)

    @property
    def next_run(self) -> datetime | None:
        return schedule_next_run(self.schedule)

    @property
    def last(self) -> Execution | None:
        """The newest run whose slot has come: a run staged for a slot still to come is the next
        run, not the last."""
        return self.strip[-1] if self.strip else None

    @cached_property
    def strip(self) -> list[Execution]:
        now = timezone.now()
        return [e for e in reversed(self.recent) if e.fire_time <= now]

    @property
    def strip_label(self) -> str:
        return ", ".join(e.status for e in self.strip) or "none"

    @property
    def strip_cells(self) -> SafeString:
        """The strip's cells as markup, built here rather than in a template loop: a page of 100
        schedules is 1,000 cells, and the template engine's lookups were most of the page's time."""
        try:
            zone: tzinfo = ZoneInfo(self.schedule.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
        return format_html_join("", '<span class="run-cell run-{}" title="{}: {}"></span>', (
            (e.status, e.fire_time.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"), e.status) for e in self.strip))


def schedule_description(schedule: Schedule) -> str:
    try:
        return cronlib.cron_describe(cronlib.cron_stored(schedule.cron))
    except ValidationError:
        return schedule.cron


def schedules_list(*, team: Team, after: str | None = None, limit: int = 50,
                   name: str = "", handler: str = "") -> tuple[list[ScheduleRow], str | None]:
    """A page of the team's schedules by name, each with its last STRIP executions (three queries
    whatever the team has: index schedule_team_name), and the cursor of the next page: `after` is
    the cursor the previous page gave, where it stopped (its last schedule's name and key, sealed:
    pulse_site.paging.cursor_seal), so that no schedule deleted, renamed or made since moves the
    pages. `name` keeps the schedules whose name holds it (any case); `handler` keeps those of that
    handler."""
    check_page_limit(limit)
    rows = Schedule.objects.for_team(team)
    if name:
        rows = rows.filter(name__icontains=name)
    if handler:
        rows = rows.filter(handler=handler)
    scope = f"schedules:{team.pk}"
    if after:
        last_name, last_pk = cursor_open(scope, after)
        rows = rows.filter(Q(name__gt=last_name) | Q(name=last_name, pk__gt=last_pk))
    page = list(rows.order_by("name", "pk")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return _with_recent(page), (cursor_seal(scope, [page[-1].name, page[-1].pk]) if more else None)


def schedule_row(schedule: Schedule) -> ScheduleRow:
    """One schedule as the list shows it, for the live list's redraw."""
    return _with_recent([schedule])[0]


def _with_recent(schedules: list[Schedule]) -> list[ScheduleRow]:
    # The executions numbered per schedule by a window function: one query for the whole page.
    rows = {s.pk: ScheduleRow(s) for s in schedules}
    if rows:
        recent = (
            Execution.objects.filter(schedule_id__in=rows)
            .annotate(n=Window(RowNumber(), partition_by=[F("schedule_id")], order_by=F("id").desc()))
            .filter(n__lte=STRIP).select_related("job").order_by("schedule_id", "-id")
        )
        for execution in recent:
            rows[execution.schedule_id].recent.append(execution)
    return list(rows.values())


def _staged_slot(schedule: Schedule) -> datetime | None:
    """The slot of a run staged ahead of it (schedules.services._stage), which already moved
    next_run_at past that slot and made it the last run, still to come."""
    staged, start = schedule.last_run_at, schedule.next_run_at
    if staged is not None and start is not None and timezone.now() < staged < start:
        return staged
    return None


def schedule_next_run(schedule: Schedule) -> datetime | None:
    """When the schedule's next run starts: a staged run's slot, else next_run_at (None: paused)."""
    return _staged_slot(schedule) or schedule.next_run_at


def schedule_next_runs(schedule: Schedule, count: int = 5) -> list[datetime]:
    """The next `count` fire times (UTC) from the next run on (a staged run's slot first), or
    from now when paused."""
    try:
        cron = cronlib.cron_stored(schedule.cron)
        zone = cronlib.zone_get(schedule.time_zone)
    except ValidationError:
        return []
    start = schedule.next_run_at
    if start is None:
        return cronlib.next_fires(cron, zone, timezone.now(), count)
    staged = _staged_slot(schedule)
    if staged is not None:
        return [staged, start, *cronlib.next_fires(cron, zone, start, count - 2)][:count]
    return [start, *cronlib.next_fires(cron, zone, start, count - 1)]


def schedule_fire_note(schedule: Schedule, run: datetime) -> str:
    """What a clock change does to this run of the schedule (cron.fire_note): "" for most runs,
    and for an expression or zone that no longer parses."""
    try:
        return cronlib.fire_note(cronlib.cron_stored(schedule.cron), cronlib.zone_get(schedule.time_zone), run)
    except ValidationError:
        return ""


def executions_list(*, schedule: Schedule, status: str = "", before: str | None = None,
                    limit: int = 50) -> tuple[list[Execution], str | None]:
    """Newest first, keyset-paginated: `before` is the cursor the previous page gave, where it
    stopped (pulse_site.paging.cursor_seal): the retention or a withdrawn staged run deleting a run
    moves no page."""
    check_choice("status", status, EXECUTION_STATUSES)
    check_page_limit(limit)
    rows: QuerySet[Execution] = Execution.objects.filter(schedule=schedule)
    if status:
        rows = rows.filter(Q(job__isnull=True, ended="", outcome=status) | Q(job__isnull=True, ended=status)
                           | Q(job__status=status))
    scope = f"executions:{schedule.pk}"
    if before:
        rows = rows.filter(pk__lt=cursor_open(scope, before)[0])
    page = list(rows.select_related("job", "schedule").order_by("-pk")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return page, (cursor_seal(scope, [page[-1].pk]) if more else None)


def preview(*, cron: object, time_zone: object, count: int = 5) -> dict[str, object]:
    """What a form shows as you type: the description and next runs (with what a clock change does
    to each: cron.fire_note), or ValidationError per field."""
    errors = FieldErrors()
    parsed = zone = None
    with errors.collect():
        parsed = cronlib.cron_parse(cron)
    with errors.collect():
        zone = cronlib.zone_get(time_zone)
    errors.raise_any()
    assert parsed is not None and zone is not None
    runs = cronlib.next_fires(parsed, zone, timezone.now(), count)
    return {"description": cronlib.cron_describe(parsed), "next_runs": runs, "zone": zone, "cron": parsed,
            "notes": [cronlib.fire_note(parsed, zone, run) for run in runs]}


# How far ahead a schedule's cost is projected: the span of the monthly limit it is set against.
PROJECTION_DAYS = 30


@dataclass(frozen=True)
class Projection:
    """What a schedule would run and cost over the next PROJECTION_DAYS, against the team's limits."""

    runs: int
    approximate: bool
    per_run: int | None  # micros; None when the handler is gone or cannot estimate this payload
    daily_limit: int | None
    monthly_limit: int | None
    weekly_limit: int | None = None
    # Runs on its busiest day of the budget (counted when the runs were, else None: the average).
    busiest_day: int | None = None

    @property
    def total(self) -> int | None:
        return None if self.per_run is None else self.per_run * self.runs

    @property
    def per_day(self) -> int | None:
        return None if self.total is None else self.total // PROJECTION_DAYS

    @property
    def refused_by(self) -> list[str]:
        """The limits each run's estimate alone is above: every run is refused, none is held."""
        if self.per_run is None or not self.runs:
            return []
        return [f"the {name} limit of {money_text(limit)}" for name, limit in self._limits() if self.per_run > limit]

    def _limits(self) -> list[tuple[str, int]]:
        return [(name, limit) for name, limit in (("daily", self.daily_limit), ("weekly", self.weekly_limit),
                                                  ("monthly", self.monthly_limit)) if limit is not None]

    @property
    def over(self) -> list[str]:
        """The team's limits this schedule alone would pass, in words: its busiest day against the
        daily limit (a weekday schedule spends on Mondays what its average spreads over the week),
        an average week against the weekly, the whole span against the monthly."""
        if self.per_run is None:
            return []
        day_runs = self.busiest_day if self.busiest_day is not None else -(-self.runs // PROJECTION_DAYS)
        spent = {"daily": self.per_run * day_runs, "weekly": self.per_run * self.runs * 7 // PROJECTION_DAYS,
                 "monthly": self.per_run * self.runs}
        return [f"the {name} limit of {money_text(limit)}" for name, limit in self._limits() if spent[name] > limit]

    @property
    def text(self) -> str:
        """'about 43,200 runs × 0.12 = 5,184 (172.8 a day on average)'."""
        runs = f"{'about ' if self.approximate else ''}{self.runs:,} run{'' if self.runs == 1 else 's'}"
        if self.total is None:
            return runs + (" (no estimate: the handler is gone or refuses the payload)" if self.runs else "")
        if self.per_run == 0:
            return f"{runs}, each free (an estimate of 0)"
        return f"{runs} × {money_text(self.per_run)} = {money_text(self.total)} ({money_text(self.per_day)} a day on average)"

    @property
    def over_text(self) -> str:
        if self.refused_by:
            return (f"Each run's estimate of {money_text(self.per_run)} is above {' and '.join(self.refused_by)}: "
                    "every run is refused (recorded as failed, with no job) until the limit is raised.")
        return (f"Alone, this schedule would pass {' and '.join(self.over)}: its runs wait whenever the budget is "
                "spent (held, or skipped while one waits, as its overlap policy says).") if self.over else ""

    def as_dict(self) -> dict[str, object]:
        return {"days": PROJECTION_DAYS, "runs": self.runs, "approximate": self.approximate,
                "per_run": money_str(self.per_run), "per_day": money_str(self.per_day), "total": money_str(self.total),
                "over": self.over, "refused_by": self.refused_by}


def _busiest_day(cron: cronlib.Cron, zone: ZoneInfo, *, start: datetime, runs: int, day_zone: ZoneInfo) -> int:
    """The most runs of the next `runs` (counted exactly, so at most a few hundred) that fall on
    one day of the budget's zone."""
    per_day: Counter[Any] = Counter()
    moment = start
    for _ in range(runs):
        moment = cronlib.next_fire(cron, zone, moment)
        per_day[moment.astimezone(day_zone).date()] += 1
    return max(per_day.values(), default=0)


def projection(*, team: Team, cron: cronlib.Cron, zone: ZoneInfo, start: datetime | None, handler: str,
               payload: object, estimate_override: int | None) -> Projection:
    """Runs in the next PROJECTION_DAYS from `start` (None: it does not fire) times the estimate
    (the override, else the handler's for the payload), against the team's limits."""
    runs, approximate = 0, False
    if start is not None:
        runs, approximate = cronlib.runs_within(cron, zone, start=start - timedelta(microseconds=1),
                                                span=timedelta(days=PROJECTION_DAYS))
    per_run = estimate_override
    if per_run is None:
        found = find_handler(handler)
        try:
            # The payload as each run's submit will have it: a schedule keeps its own as written.
            per_run = (found.estimate_micros(with_defaults(found.schema, payload))
                       if found is not None and isinstance(payload, dict) else None)
        except Exception:  # a handler's estimator refusing this payload: the run would fail too
            per_run = None
    policy = budget_policy_get(team=team)
    busiest = None
    if start is not None and runs and not approximate:
        busiest = _busiest_day(cron, zone, start=start - timedelta(microseconds=1), runs=runs,
                               day_zone=policy_zone(policy, team))
    return Projection(runs=runs, approximate=approximate, per_run=per_run, daily_limit=policy.daily_limit,
                      monthly_limit=policy.monthly_limit, weekly_limit=policy.weekly_limit, busiest_day=busiest)


def schedule_projection(schedule: Schedule) -> Projection | None:
    """A saved schedule's projection, from its next run (none while paused or broken). None for an
    expression or zone that no longer parses."""
    try:
        cron = cronlib.cron_stored(schedule.cron)
        zone = cronlib.zone_get(schedule.time_zone)
    except ValidationError:
        return None
    fires = schedule.enabled and not schedule.broken_reason
    return projection(team=schedule.team, cron=cron, zone=zone, start=schedule.next_run_at if fires else None,
                      handler=schedule.handler, payload=schedule.payload, estimate_override=schedule.estimate_override)
