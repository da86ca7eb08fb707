"""What the budget page, the API and the banner read. Every query is scoped to one team."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Sum
from django.utils import timezone

from budgets.models import Alert, BudgetPolicy, HandlerCap, Ledger, Override, PolicyChange, Start, Usage
from budgets.money import grouped, money_str, money_text
from budgets.services import (
    CAP_FIELDS, HOLD_KINDS, KIND_LABEL, POLICY_MONEY_FIELDS, RATE_WINDOW, alert_payload, alert_whose,
    budget_policy_get, policy_zone,
)
from budgets.windows import Window, windows_at
from pulse_site.charts import Bucket, Chart, stacked_bars
from pulse_site.errors import NotFound
from pulse_site.ids import looks_like_public_id
from pulse_site.teams.models import Team

LABELS = {"day": "Today", "week": "This week", "month": "This month"}
# The spending pace a window's "limit reached at" projects from: what was charged this long back.
PACE_WINDOW = timedelta(hours=1)
# The most charges the pace is read from (a busy team's hour is paced from its newest ones).
PACE_SAMPLE = 2_000


@dataclass
class WindowUsage:
    kind: str
    label: str
    scope: str
    start: datetime
    end: datetime
    committed: int
    reserved: int
    limit: int | None
    # Charged in the last PACE_WINDOW at this scope (micro-units), and when the limit is reached if
    # spending goes on at that pace (_project), when before the reset.
    pace: int = 0
    limit_reached_at: datetime | None = None

    @property
    def spent(self) -> int:
        return self.committed + self.reserved

    @property
    def pace_per_hour(self) -> int:
        return self.pace * 3600 // int(PACE_WINDOW.total_seconds())

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.spent)

    @property
    def percent(self) -> float | None:
        if self.limit is None:
            return None
        if self.limit == 0:
            return 100.0 if self.spent else 0.0
        return round(self.spent * 100 / self.limit, 1)

    def bar(self, thresholds: list[int]) -> dict[str, float]:
        """Widths (0-100) of the committed and reserved parts of the bar."""
        if not self.limit:
            return {"committed": 0.0, "reserved": 0.0}
        committed = min(100.0, self.committed * 100 / self.limit)
        return {"committed": round(committed, 2),
                "reserved": round(min(100.0 - committed, self.reserved * 100 / self.limit), 2)}

    def level(self, thresholds: list[int]) -> str:
        percent = self.percent
        if percent is None or not thresholds:
            return "ok"
        if percent >= max(thresholds):
            return "over"
        if percent >= min(thresholds):
            return "warn"
        return "ok"

    def as_dict(self, thresholds: list[int]) -> dict[str, Any]:
        return {
            "window": self.kind, "scope": self.scope, "start": self.start.isoformat(), "resets_at": self.end.isoformat(),
            "committed": money_str(self.committed), "reserved": money_str(self.reserved),
            "spent": money_str(self.spent), "limit": money_str(self.limit), "remaining": money_str(self.remaining),
            "percent": self.percent, "level": self.level(thresholds),
            "pace_per_hour": money_str(self.pace_per_hour),
            "limit_reached_at": self.limit_reached_at.isoformat() if self.limit_reached_at else None,
        }


def _usage_for(team: Team, scope: str, windows: list[Window], limits: dict[str, int | None], *, now: datetime,
               paces: dict[str, int], zone: ZoneInfo, week_start: int) -> list[WindowUsage]:
    rows = {(u.kind, u.window_start): u for u in Usage.objects.filter(
        team=team, scope=scope, window_start__in=[w.start for w in windows])}
    out = []
    for window in windows:
        row = rows.get((window.kind, window.start))
        out.append(WindowUsage(kind=window.kind, label=LABELS[window.kind], scope=scope, start=window.start,
                               end=window.end, committed=row.committed if row else 0,
                               reserved=row.reserved if row else 0, limit=limits[window.kind],
                               pace=paces.get(scope, 0)))
    for at, usage in enumerate(out):
        usage.limit_reached_at = _project(usage, out[:at], now=now, zone=zone, week_start=week_start)
    return out


def _project(target: WindowUsage, shorter: list[WindowUsage], *, now: datetime, zone: ZoneInfo, week_start: int
             ) -> datetime | None:
    """When `target`'s limit is reached if spending goes on at its pace, held back by the limits of
    the shorter windows of its scope (a week's spend stops each day at the daily limit and resumes
    when the day resets); None if not before `target` resets, or without a limit, pace or money
    left. Walks the shorter windows' instances up to the reset: at most ~36 steps for a month."""
    left = target.remaining
    if not left or not target.pace:
        return None
    limits = {w.kind: w.limit for w in shorter}
    room = {w.kind: w.remaining or 0 for w in shorter if w.limit is not None}
    starts = {w.kind: w.start for w in shorter}
    moment = now
    while moment < target.end:
        instances = [w for w in windows_at(moment, zone=zone, week_start=week_start) if w.kind in starts]
        for window in instances:
            if window.start != starts[window.kind]:  # a new day (or week): its whole limit again
                starts[window.kind] = window.start
                if window.kind in room:
                    room[window.kind] = limits[window.kind] or 0
        segment_end = min([target.end, *(w.end for w in instances)])
        at_pace = target.pace * _micros(segment_end - moment) // _micros(PACE_WINDOW)
        can = min([at_pace, *room.values()])
        if left <= can:
            # In whole micro-units: an hour times the money left overflows a timedelta at large
            # amounts, though the quotient is within this segment.
            return moment + timedelta(microseconds=_micros(PACE_WINDOW) * left // target.pace)
        left -= can
        room = {kind: value - can for kind, value in room.items()}
        moment = segment_end
    return None


def _micros(span: timedelta) -> int:
    return span // timedelta(microseconds=1)


def _paces(team: Team, now: datetime) -> dict[str, int]:
    """Charged per scope (the team's '' and each handler's) per PACE_WINDOW, from the newest
    PACE_SAMPLE charges of the last PACE_WINDOW (ledger_team_kind_at, read backwards; each charge is
    written once per window kind, so the day's rows count each once). A team that settles more than
    that in the window is paced from the span its newest charges cover: every job writes charges,
    and the budget page must not add up a busy team's whole hour on each load."""
    rows = list(Ledger.objects.filter(team=team, kind=Ledger.Kind.CHARGE, window_kind="day", at__gt=now - PACE_WINDOW)
                .order_by("-at").values_list("scope", "amount", "at")[:PACE_SAMPLE])
    span = now - rows[-1][2] if len(rows) == PACE_SAMPLE else PACE_WINDOW
    totals: dict[str, int] = defaultdict(int)
    for scope, amount, _ in rows:
        totals[scope] += amount
    return {scope: total * _micros(PACE_WINDOW) // max(1, _micros(span)) for scope, total in totals.items()}


@dataclass
class BudgetUsage:
    policy: BudgetPolicy
    now: datetime
    windows: list[WindowUsage]
    caps: list[tuple[str, list[WindowUsage]]]
    calls_this_minute: int
    running: int

    @property
    def thresholds(self) -> list[int]:
        return sorted(int(t) for t in self.policy.alert_thresholds or [])

    @property
    def calls_remaining(self) -> int | None:
        cpm = self.policy.calls_per_minute
        return None if cpm is None else max(0, cpm - self.calls_this_minute)

    def as_dict(self) -> dict[str, Any]:
        thresholds = self.thresholds
        return {
            "at": self.now.isoformat(),
            "time_zone": str(policy_zone(self.policy)),
            "windows": [w.as_dict(thresholds) for w in self.windows],
            "handler_caps": {handler: [w.as_dict(thresholds) for w in usage] for handler, usage in self.caps},
            "calls_this_minute": self.calls_this_minute, "calls_per_minute": self.policy.calls_per_minute,
            "calls_remaining": self.calls_remaining,
            "running": self.running, "max_concurrent": self.policy.max_concurrent,
        }


def budget_usage(*, team: Team) -> BudgetUsage:
    policy = budget_policy_get(team=team)
    now = timezone.now()
    zone = policy_zone(policy, team)
    windows = windows_at(now, zone=zone, week_start=policy.week_start)
    limits = {w.kind: policy.limit_for(w.kind) for w in windows}
    usage_for = partial(_usage_for, team, now=now, paces=_paces(team, now), zone=zone, week_start=policy.week_start)
    caps = [
        (cap.handler, usage_for(cap.handler, windows, {w.kind: cap.limit_for(w.kind) for w in windows}))
        for cap in HandlerCap.objects.filter(team=team)
    ]
    return BudgetUsage(
        policy=policy, now=now, windows=usage_for("", windows, limits), caps=caps,
        calls_this_minute=Start.objects.filter(team=team, at__gt=now - RATE_WINDOW).count(),
        running=policy.running,
    )


def budget_held_jobs(*, team: Team, limit: int = 100) -> list[Any]:
    """Jobs held by budget, rate or concurrency, in the order they will be released."""
    from jobs.models import Job  # budgets must not import jobs at module level

    return list(
        Job.objects.for_team(team).filter(status=Job.Status.PAUSED, hold_reasons__0__kind__in=HOLD_KINDS)
        .order_by("-priority", "id")[:limit]
    )


def budget_held_count(*, team: Team, cap: int = 100) -> int:
    """How many jobs the budget holds, counted up to `cap` (the overview says "100+")."""
    from jobs.models import Job  # budgets must not import jobs at module level

    return Job.objects.for_team(team).filter(status=Job.Status.PAUSED, hold_reasons__0__kind__in=HOLD_KINDS)[:cap].count()


def budget_history(*, team: Team, days: int = 30) -> dict[str, Any]:
    """Charged spend per local day and handler for the last `days` days (today included)."""
    policy = budget_policy_get(team=team)
    zone = policy_zone(policy, team)
    today = timezone.now().astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    since = windows_at(datetime.combine(first, datetime.min.time(), tzinfo=zone), zone=zone)[0].start
    rows = (
        Ledger.objects.filter(team=team, kind=Ledger.Kind.CHARGE, scope="", window_kind="day", window_start__gte=since)
        .values("window_start", "handler").annotate(total=Sum("amount")).order_by()
    )
    per_day: dict[Any, dict[str, int]] = defaultdict(dict)
    handlers: set[str] = set()
    for row in rows:
        start = row["window_start"]
        assert start is not None  # (the filter's)
        day = start.astimezone(zone).date()
        per_day[day][row["handler"]] = per_day[day].get(row["handler"], 0) + row["total"]
        handlers.add(row["handler"])
    names = sorted(handlers)
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        amounts = per_day.get(day, {})
        # `cells`: the day's (handler, amount) in the order of `handlers` (None: nothing charged),
        # for the budget page's table, whose cells a phone labels with the handler; a lookup per
        # cell in the template was days × handlers² steps.
        out.append({"date": day, "total": sum(amounts.values()), "handlers": amounts,
                    "cells": [(name, amounts.get(name)) for name in names]})
    return {"days": out, "handlers": names, "time_zone": str(zone), "daily_limit": policy.daily_limit}


def spend_chart(history: dict[str, Any], *, handler: str | None = None, cap: HandlerCap | None = None) -> Chart:
    """budget_history's days as bars stacked by handler, with the team's daily limit drawn across
    them (the overview and the budget page); or one `handler`'s bars under its `cap`'s daily limit
    (the handler's page)."""
    buckets = [Bucket(label=day["date"].strftime("%b %d"), values=day["handlers"],
                      shown={h: str(money_text(v)) for h, v in day["handlers"].items()})
               for day in history["days"]]
    if handler is None:
        series, limit, words = history["handlers"], history["daily_limit"], "daily limit"
    else:
        series, limit, words = [handler], cap.daily_limit if cap else None, "daily cap"
    return stacked_bars(title="Spend per day, last 30 days", buckets=buckets, series=series,
                        fmt=lambda micros: str(money_text(micros)),
                        line=None if limit is None else (limit, f"{words} {money_text(limit)}"))


def budget_changes(*, team: Team, limit: int = 50) -> list[PolicyChange]:
    return list(PolicyChange.objects.filter(team=team).select_related("by")[:limit])


def budget_overrides(*, team: Team, limit: int = 50) -> list[Override]:
    return list(Override.objects.filter(team=team).select_related("created_by")[:limit])


def override_get_for_team(*, team: Team, override_id: str) -> Override:
    """The team's override, or NotFound (another team's id answers exactly like no id)."""
    if not looks_like_public_id(override_id, "OV"):
        raise NotFound("No such override.")
    override = Override.objects.filter(team=team, public_id=override_id).select_related("created_by").first()
    if override is None:
        raise NotFound("No such override.")
    return override


def budget_active_alerts(*, team: Team) -> list[dict[str, Any]]:
    """Alerts of the current windows, against the limits and thresholds in force: the dashboard
    banner. It stays up until its window ends or its limit changes (a raised limit takes it down;
    the spend already made is measured against the new one at once), so it says when the
    threshold was reached and what was spent then (the budget panel shows what is spent now), and
    when the window resets. A window the budget's bounds left (a new zone or week start: the
    current windows start from nothing) is no longer current, though it has not ended in UTC."""
    now = timezone.now()
    alerts = list(Alert.objects.filter(team=team, window_end__gt=now).order_by("-threshold", "-at"))
    if not alerts:
        return []
    policy = BudgetPolicy.objects.filter(team=team).first()
    if policy is None:
        return []
    current = {w.kind: w.start for w in windows_at(now, zone=policy_zone(policy, team), week_start=policy.week_start)}
    alerts = [alert for alert in alerts if current.get(alert.window_kind) == alert.window_start]
    caps = {cap.handler: cap for cap in HandlerCap.objects.filter(team=team, handler__in={a.scope for a in alerts})}
    thresholds = {int(t) for t in policy.alert_thresholds or []}

    def in_force(alert: Alert) -> bool:
        owner = policy if alert.scope == "" else caps.get(alert.scope)
        return alert.threshold in thresholds and owner is not None and owner.limit_for(alert.window_kind) == alert.limit

    # One banner per scope and window: the highest threshold reached says it all.
    seen: set[tuple[str, str]] = set()
    out = []
    for alert in alerts:
        key = (alert.scope, alert.window_kind)
        if key not in seen and in_force(alert):
            seen.add(key)
            out.append({**alert_payload(alert), "at": alert.at, "ends": alert.window_end,
                        "whose": alert_whose(alert),
                        "window_label": KIND_LABEL[alert.window_kind],
                        # As the banner shows them (the payload's are the events' plain digits).
                        "spent": money_text(alert.spent), "limit": money_text(alert.limit)})
    return out


# Settings whose None is "no limit" (a budget policy's); any other None reads "unset".
UNLIMITED_WHEN_NONE = (*POLICY_MONEY_FIELDS, "calls_per_minute", "max_concurrent")


def setting_changes(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(field, before, after) in words for each setting a change changed: the budget page's change
    history and the activity's line of a settings event. Limits read "unlimited" when unset,
    amounts grouped; each handler cap that changed is a row of its own (handler_caps.<handler>, as
    the API names it)."""
    rows = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if key == "handler_caps" and isinstance(old or {}, dict) and isinstance(new or {}, dict):
            old_caps, new_caps = old or {}, new or {}
            rows += [(f"handler_caps.{handler}", _cap_text(old_caps.get(handler)), _cap_text(new_caps.get(handler)))
                     for handler in sorted(set(old_caps) | set(new_caps)) if old_caps.get(handler) != new_caps.get(handler)]
        else:
            rows.append((key, _setting_text(key, old), _setting_text(key, new)))
    return rows


def _setting_text(key: str, value: Any) -> str:
    if value is None:
        return "unlimited" if key in UNLIMITED_WHEN_NONE else "unset"
    if key in POLICY_MONEY_FIELDS and isinstance(value, str):
        return grouped(value)
    if key == "alert_thresholds" and isinstance(value, list):
        return f"{', '.join(str(v) for v in value)} %" if value else "none"
    if key == "time_zone" and value == "":
        return "the team's"
    return value if isinstance(value, str) else json.dumps(value)


def _cap_text(limits: Any) -> str:
    """A handler cap as the change history shows it: "daily 1.5 · weekly unlimited · monthly 20"."""
    if limits is None:
        return "no cap"
    if not isinstance(limits, dict):
        return json.dumps(limits)
    return " · ".join(f"{window} {grouped(limits[window]) if isinstance(limits.get(window), str) else 'unlimited'}"
                      for window in CAP_FIELDS)
