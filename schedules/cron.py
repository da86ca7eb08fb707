"""Cron evaluation, in one place: validation, the next fire times in a time zone, descriptions.

croniter parses and steps through the expression on *naive local* wall times; this module turns
those into UTC instants with the time-zone rules of classic cron (Vixie/ISC cron), which croniter
alone does not apply:

- A *fixed-time* expression (neither the minute nor the hour field starts with `*`, e.g. `30 2 * * *`)
  runs once per local day across DST: a local time skipped by the spring jump runs right after the
  jump (at the first instant of the new offset), a local time repeated in autumn runs once (the
  first time).
- A *wildcard* expression (`*/15 * * * *`, `0 * * * *`) keeps its real-time spacing: skipped local
  times do not exist and do not run, repeated local times run in both passes.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from cron_descriptor import ExpressionDescriptor, Options
from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter
from django.conf import settings

from pulse_site.errors import ValidationError
from pulse_site.zones import zone_names, zone_refusal

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# An expression must fire within this many years of now, or it is refused as never firing.
FIRES_WITHIN_YEARS = 5
# A due slot older than this when the tick sees it was missed (downtime), not merely late.
MISFIRE_GRACE = timedelta(seconds=60)
# Backward DST shifts are at most 2 h anywhere in the tz database (historic double summer time).
_FOLD_WINDOW = timedelta(hours=3)


@dataclass(frozen=True)
class Cron:
    """A validated expression: the text as the user wrote it and the five fields it stands for."""

    expression: str
    fields: str

    @property
    def fixed_time(self) -> bool:
        minute, hour = self.fields.split()[:2]
        return not (minute.startswith("*") or hour.startswith("*"))


def _expand(expression: str) -> str:
    text = " ".join(expression.split())
    lowered = text.lower()
    if lowered == "@reboot":
        raise ValidationError.for_field("cron", "@reboot is not supported: schedules fire by the clock only.")
    if lowered.startswith("@") and lowered not in MACROS:
        raise ValidationError.for_field(
            "cron", f"Unknown macro '{text}'. Use one of {', '.join(MACROS)} or five fields."
        )
    return MACROS.get(lowered, text)


def cron_parse(expression: object) -> Cron:
    """The expression if it is five valid fields (or a macro) that fire at least once in the next
    few years and no more often than the minimum interval; else ValidationError on `cron`."""
    if not isinstance(expression, str) or not expression.strip():
        raise ValidationError.for_field("cron", "A cron expression is required, e.g. '0 9 * * 1-5'.")
    if len(expression) > 200:
        raise ValidationError.for_field("cron", "At most 200 characters.")
    fields = _expand(expression)
    count = len(fields.split())
    if count != 5:
        raise ValidationError.for_field(
            "cron",
            f"Five fields are needed (minute hour day-of-month month day-of-week); this has {count}."
            + (" Seconds and years are not supported." if count in (6, 7) else ""),
        )
    parts = fields.split()
    _refuse(map(_random_problem, FIELDS, parts))
    try:
        parsed = croniter(fields, datetime(2000, 1, 1))
    except (CroniterBadCronError, CroniterError, ValueError, KeyError, TypeError) as exc:
        # croniter names the expression, not the field: say which field is wrong and why where
        # the fault is a plain one (a value out of range, a zero step, a word that is no name),
        # else which field croniter cannot read alone, and the forms that field takes.
        _refuse(map(_field_problem, FIELDS, parts))
        _refuse(map(_form_problem, FIELDS, parts))
        raise ValidationError.for_field("cron", f"Not a valid cron expression: {exc}") from None
    _refuse([_single_day_problem(day_of_month=parts[2], day_of_week=parts[4])])
    cron = Cron(expression=" ".join(expression.split()), fields=fields)
    _check_fires(cron)
    _check_interval(parsed.expanded)
    return cron


def _refuse(problems: Iterable[str | None]) -> None:
    """ValidationError on `cron` naming each of these problems, if there is one."""
    found = [problem for problem in problems if problem]
    if found:
        raise ValidationError.for_field("cron", f"Not a valid cron expression: {'; '.join(found)}.")


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # the words it also takes (jan–dec, sun–sat)
    extensions: str = ""  # the forms beyond lists, ranges and steps it takes, in words

    @property
    def wanted(self) -> str:
        return f"a number from {self.low} to {self.high}" + (
            f" or a name {self.names[0]}–{self.names[-1]}" if self.names else "")

    @property
    def forms(self) -> str:
        plain = f"{self.wanted}, a range a-b, a list a,b"
        return f"{plain}, a step */n, {self.extensions}" if self.extensions else f"{plain} or a step */n"


FIELDS = (
    Field("minute", 0, 59),
    Field("hour", 0, 23),
    Field("day of month", 1, 31, extensions="L for the last day of the month, nW for the weekday nearest day n, or ?"),
    Field("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    Field("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
          extensions="n#k for the k-th weekday n of the month, Ln for its last weekday n, or ?"),
)
DAY_OF_MONTH, DAY_OF_WEEK = FIELDS[2], FIELDS[4]
# croniter's random (R) and hashed (H) values, alone, in a range or with a step: R(0-5), H/15.
_RANDOM = re.compile(r"^[hr](\(.*\))?(/.*)?$", re.IGNORECASE)


def _said(piece: str) -> str:
    """A piece of a field as the message shows it: a control character or the like as its escape."""
    return piece if piece.isprintable() else ascii(piece)[1:-1]


def _random_problem(field: Field, text: str) -> str | None:
    """croniter draws an R anew each time it reads the expression, so the preview showed one time
    and each tick worked out another (a daily R(0-5) ran twice some days, not at all on others);
    an H needs a hash key of a job that Pulse does not give."""
    if not any(_RANDOM.match(part) for part in text.split(",")):
        return None
    return (f"{field.name} '{_said(text)}': random (R) and hashed (H) values are not supported: a run would come "
            f"at a new random time each time it is worked out, not at the one shown; write the {field.name} you want")


def _form_problem(field: Field, text: str) -> str | None:
    """The field's fault when croniter cannot read it even with every other field '*' (an
    extension it does not know, like '5L' or 'LW'): the forms the field takes."""
    alone = ["*"] * len(FIELDS)
    alone[FIELDS.index(field)] = text
    try:
        croniter(" ".join(alone), datetime(2000, 1, 1))
    except (CroniterBadCronError, CroniterError, ValueError, KeyError, TypeError):
        return f"{field.name} '{_said(text)}' is not a form Pulse reads ({field.forms})"
    return None


def _picks_days(field: Field, text: str) -> bool:
    """Whether the field uses a form that picks days of the month by itself: nW in the day of
    month, n#k or Ln in the day of week."""
    parts = text.upper().split(",")
    if field is DAY_OF_MONTH:
        return any("W" in part for part in parts)
    return any("#" in part or re.match(r"L\d", part) for part in parts)


def _single_day_problem(*, day_of_month: str, day_of_week: str) -> str | None:
    """croniter neither ORs nor ANDs a day field with nW, n#k or Ln and the other day field set:
    '0 0 15 * 5#3' ran on every third Friday, '0 0 15W * 5' on no Friday, '0 0 1 * L5' never,
    each described as the two together. Refused: the other field must be * or ?."""
    for field, text, other, other_text in ((DAY_OF_MONTH, day_of_month, DAY_OF_WEEK, day_of_week),
                                           (DAY_OF_WEEK, day_of_week, DAY_OF_MONTH, day_of_month)):
        if _picks_days(field, text) and other_text not in ("*", "?"):
            return (f"{field.name}: '{_said(text)}' picks the days on its own; the {other.name} must then be * or ? "
                    "(with both, the runs would not be the ones described)")
    return None


def _field_problem(field: Field, text: str) -> str | None:
    """What is wrong with one field, in words, if it is a plain fault; None when the field is fine
    or uses syntax beyond lists, ranges and steps (L, W, #, ?: _form_problem reads those)."""
    if any(mark in text.upper() for mark in "LW#?"):
        return None
    said, wanted = _said, field.wanted

    def at(piece: str) -> str:  # the field's name, and the whole field when the fault is a piece of it
        return field.name if piece == text else f"{field.name} '{said(text)}':"

    for part in text.split(","):
        base, slash, step = part.partition("/")
        if slash and not (step.isascii() and step.isdigit() and int(step) > 0):
            return f"{at(step)} the step '{said(step)}' is not a whole number from 1"
        if base == "*":
            continue
        values = base.split("-")
        if len(values) > 2 or "" in values:
            return f"{at(base)} '{said(base)}' is neither {wanted} nor a range of two (a-b)"
        for value in values:
            if value.lower() in field.names:
                continue
            if not (value.isascii() and value.isdigit()):
                return f"{at(value)} '{said(value)}' is not {wanted}"
            if not field.low <= int(value) <= field.high:
                return f"{at(value)} {int(value)} is outside {field.low}–{field.high}"
    return None


@lru_cache(maxsize=4096)
def cron_stored(expression: str) -> Cron:
    """A stored schedule's expression, validated when it was saved, as a Cron without checking
    again when it fires and how often (cron_parse steps through the next five years for that): the
    lists describe and step through hundreds of them. ValidationError if it no longer parses."""
    fields = _expand(expression)
    # One saved with a random value before those were refused: no longer fired (the tick, which
    # reads it through cron_parse, marks it broken with the reason) nor shown with made-up times.
    _refuse(map(_random_problem, FIELDS, fields.split()))
    try:
        croniter(fields, datetime(2000, 1, 1))
    except (CroniterBadCronError, CroniterError, ValueError, KeyError, TypeError) as exc:
        raise ValidationError.for_field("cron", f"Not a valid cron expression: {exc}") from None
    return Cron(expression=" ".join(expression.split()), fields=fields)


def _check_fires(cron: Cron) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        first = croniter(cron.fields, now).get_next(datetime)
    except CroniterBadDateError:
        first = None
    if first is None or first > now + timedelta(days=366 * FIRES_WITHIN_YEARS):
        raise ValidationError.for_field(
            "cron", f"This expression never fires (not once in the next {FIRES_WITHIN_YEARS} years)."
        )


def _check_interval(expanded: list[list[object]]) -> None:
    """Refuse expressions that fire more often than PULSE_SCHEDULE_MIN_INTERVAL_SECONDS.

    Within a firing day the minute×hour slots repeat identically, so the shortest gap is between
    two slots of one day or from the last slot of a day to the first of the next.
    """
    minutes = list(range(60)) if expanded[0] == ["*"] else sorted(int(m) for m in expanded[0])  # type: ignore[call-overload]
    hours = list(range(24)) if expanded[1] == ["*"] else sorted(int(h) for h in expanded[1])  # type: ignore[call-overload]
    slots = sorted(h * 60 + m for h in hours for m in minutes)
    gaps = [b - a for a, b in zip(slots, slots[1:], strict=False)] + [slots[0] + 1440 - slots[-1]]
    shortest = min(gaps) * 60
    minimum = settings.PULSE_SCHEDULE_MIN_INTERVAL_SECONDS
    if shortest < minimum:
        raise ValidationError.for_field(
            "cron", f"Fires every {shortest} s at times; the minimum interval is {minimum} s."
        )


def zone_get(name: object, *, field: str = "time_zone") -> zoneinfo.ZoneInfo:
    """The IANA zone called `name`, or ValidationError naming `field`."""
    if not isinstance(name, str) or name not in zone_names():
        raise ValidationError.for_field(field, zone_refusal(name))
    return zoneinfo.ZoneInfo(name)


def _instants(local: datetime, zone: zoneinfo.ZoneInfo, *, fixed_time: bool) -> list[datetime]:
    """The UTC instants at which the naive local time `local` happens, under the cron rules."""
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    first_utc, second_utc = first.astimezone(UTC), second.astimezone(UTC)
    exists = first_utc.astimezone(zone).replace(tzinfo=None) == local
    if not exists:  # skipped by a forward jump
        return [_jump_instant(second_utc, first_utc, zone)] if fixed_time else []
    if first_utc == second_utc or fixed_time:
        return [first_utc]
    return [first_utc, second_utc]


def _jump_instant(before: datetime, after: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first instant carrying the new offset of a forward jump between `before` and `after`."""
    new_offset = after.astimezone(zone).utcoffset()
    low, high = before, after
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _fold_margin(after: datetime, zone: zoneinfo.ZoneInfo) -> timedelta:
    """How far back in local time a candidate can lie and still happen after `after`: non-zero only
    near a backward shift, when a local hour is lived twice."""
    now_offset = after.astimezone(zone).utcoffset() or timedelta(0)
    earlier = (after - _FOLD_WINDOW).astimezone(zone).utcoffset() or timedelta(0)
    later = (after + _FOLD_WINDOW).astimezone(zone).utcoffset() or timedelta(0)
    return max(timedelta(0), earlier - now_offset, now_offset - later)


def next_fire(cron: Cron, zone: zoneinfo.ZoneInfo, after: datetime) -> datetime:
    """The first fire time strictly after `after` (aware), in UTC."""
    after = after.astimezone(UTC)
    local_start = after.astimezone(zone).replace(tzinfo=None) - _fold_margin(after, zone)
    steps = croniter(cron.fields, local_start)
    best: datetime | None = None
    while True:
        local = steps.get_next(datetime)
        instants = [i for i in _instants(local, zone, fixed_time=cron.fixed_time)]
        # Instants grow with local time except inside a repeated hour, so once a candidate's
        # earliest instant is past the best found, no later candidate can beat it.
        if best is not None and instants and min(instants) > best:
            return best
        for instant in instants:
            if instant > after and (best is None or instant < best):
                best = instant
        if best is not None and local - local_start > timedelta(days=2) + 2 * _FOLD_WINDOW:
            return best


def fire_note(cron: Cron, zone: zoneinfo.ZoneInfo, instant: datetime) -> str:
    """What a fire time needs said beside it when a clock change moves or repeats it: a run moved
    to the jump from a local time the spring change skips, or one of a local time the autumn change
    lives twice (which pass it is); "" for any other."""
    local = instant.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if not croniter.match(cron.fields, wall):
        before = (instant - timedelta(seconds=1)).astimezone(zone).utcoffset() or timedelta(0)
        jump = (local.utcoffset() or timedelta(0)) - before
        return (f"the clocks jump from {wall - jump:%H:%M} to {wall:%H:%M} that day, skipping its time: "
                "it runs at the jump")
    if wall.replace(tzinfo=zone, fold=0).utcoffset() == wall.replace(tzinfo=zone, fold=1).utcoffset():
        return ""
    twice = f"{wall:%H:%M} comes twice that day (the clocks go back)"
    if cron.fixed_time:
        return f"{twice}: it runs the first time only"
    return f"{twice}: this is the {'second' if local.fold else 'first'}"


def next_fires(cron: Cron, zone: zoneinfo.ZoneInfo, after: datetime, count: int = 5) -> list[datetime]:
    """The first `count` fire times after `after`. Cached: the schedules of a list that share an
    expression and a zone share their next run too, and every row of them asks for the same. Fires
    fall on whole minutes of the zone, so `after` cut to its minute has the same ones after it
    (its minute itself is not after either): a page asking "from now" hits the cache too. The key
    is that minute in UTC: two local times of a zone that differ only by their pass through a
    repeated hour (fold) are equal keys, and the second pass got the first's answer."""
    minute = after.astimezone(zone).replace(second=0, microsecond=0)
    return list(_next_fires(cron, zone, minute.astimezone(UTC), count))


@lru_cache(maxsize=4096)
def _next_fires(cron: Cron, zone: zoneinfo.ZoneInfo, after: datetime, count: int) -> tuple[datetime, ...]:
    out: list[datetime] = []
    moment = after
    for _ in range(count):
        moment = next_fire(cron, zone, moment)
        out.append(moment)
    return tuple(out)


def slots_between(cron: Cron, zone: zoneinfo.ZoneInfo, *, first: datetime, until: datetime,
                  keep: int) -> list[datetime]:
    """The latest `keep` fire times from `first` (a fire time) to `until`, inclusive, ascending.

    After a long downtime there may be thousands of slots; the window grows from the end back
    towards `first` only until it holds `keep` of them, so the work stays proportional to `keep`.
    """
    if first > until:
        return []
    span = timedelta(hours=1)
    while True:
        start = max(first, until - span)
        slots: list[datetime] = []
        moment = start - timedelta(microseconds=1)
        while True:
            moment = next_fire(cron, zone, moment)
            if moment > until:
                break
            slots.append(moment)
        if len(slots) >= keep or start == first:
            return slots[-keep:]
        span *= 24


def cron_describe(cron: Cron) -> str:
    """'At 09:00, Monday through Friday' (24-hour clock, times in the schedule's zone)."""
    return _describe(cron.fields)


# cron_descriptor reads its translation catalogue anew for every description (~1 ms): a page of
# 100 schedules spent a third of its time there. A description depends on the fields alone.
@lru_cache(maxsize=4096)
def _describe(fields: str) -> str:
    options = Options()
    options.use_24hour_time_format = True
    try:
        return str(ExpressionDescriptor(fields, options).get_description())
    except Exception:  # the describer is stricter than croniter on a few forms (L, W, #)
        return fields


def runs_within(cron: Cron, zone: zoneinfo.ZoneInfo, *, start: datetime, span: timedelta,
                sample: int = 300) -> tuple[int, bool]:
    """How many times the expression fires in `span` from `start`, and whether that is an
    extrapolation: past `sample` fire times the count is scaled from the time they took, so an
    every-minute schedule costs 300 steps, not 43,200 (a month of minutes)."""
    until = start + span
    moment, counted, first = start, 0, start
    while counted < sample:
        moment = next_fire(cron, zone, moment)
        if moment > until:
            return counted, False
        if not counted:
            first = moment
        counted += 1
    # The sample's fires are `counted - 1` intervals apart in all: the span holds as many more.
    return round((counted - 1) * span / (moment - first)), True
