"""Calendar windows in a team's time zone: the one place where budget periods are computed.

A window is computed from local dates (a day is local midnight to local midnight, so 23 or 25
hours across a DST change; a week starts on the policy's week-start day; a month on the 1st) and
then expressed in UTC, where every comparison happens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY, WEEK, MONTH = "day", "week", "month"
KINDS = (DAY, WEEK, MONTH)


@dataclass(frozen=True)
class Window:
    kind: str
    start: datetime  # UTC
    end: datetime  # UTC, exclusive

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    # fold=0 on a midnight that does not exist (a DST gap at 00:00) maps to the first instant
    # after the gap, which is exactly when that local day begins.
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _bounds(kind: str, today: date, week_start: int) -> tuple[date, date]:
    if kind == DAY:
        return today, today + timedelta(days=1)
    if kind == WEEK:
        first = today - timedelta(days=(today.weekday() - week_start) % 7)
        return first, first + timedelta(days=7)
    if kind == MONTH:
        first = today.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
        return first, following
    raise ValueError(f"unknown window kind {kind!r}")


def window_at(kind: str, moment: datetime, *, zone: ZoneInfo, week_start: int = 0) -> Window:
    """The `kind` window that contains `moment` (an aware datetime) in `zone`."""
    today = moment.astimezone(zone).date()
    first, following = _bounds(kind, today, week_start)
    return Window(kind=kind, start=_local_midnight(first, zone), end=_local_midnight(following, zone))


def windows_at(moment: datetime, *, zone: ZoneInfo, week_start: int = 0) -> list[Window]:
    return [window_at(kind, moment, zone=zone, week_start=week_start) for kind in KINDS]
