"""The overview's "Recent events" and the activity history: each event of the team as a row a
person reads (what happened, to what, linked), newest first. The live list asks for the rows after
its newest one, so the page and its live updates are rendered by the same code."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from ulid import ULID

from budgets.money import grouped
from budgets.selectors import setting_changes
from jobs.events import hold_reasons_text
from jobs.models import Job
from pulse_site.errors import check_choice
from pulse_site.ids import check_page_limit, looks_like_public_id
from pulse_site.live.models import RARE_EVENTS, Event
from pulse_site.live.selectors import Audience
from pulse_site.paging import newest_first_windowed
from pulse_site.templatetags.pulse_tags import duration
from pulse_site.teams.models import Team

RECENT_EVENTS = 50
TEXT_LENGTH = 160
# Many per job and already on the job's page: listed only when asked for.
QUIET_KINDS = ("job.progress", "job.log")
# Without them, the rows are looked for among the team's newest SCAN events only: a daemon logging
# all day would otherwise have the list read back through millions of its lines for 50 others.
SCAN = 5000


@dataclass(frozen=True)
class ActivityRow:
    id: int
    kind: str
    subject: str
    text: str
    link: str | None
    at: datetime


def activity_rows(*, team: Team, audience: Audience, after: int = 0, everything: bool = False,
                  limit: int = RECENT_EVENTS) -> list[ActivityRow]:
    """The team's newest events that `audience` sees (after `after`), without progress and log lines
    unless `everything` (then among its newest SCAN events); served by the event_team_seq index (team, id)."""
    events = Event.objects.filter(team=team, id__gt=after).order_by("-id")
    if not everything:
        newest = events.values("id")[:SCAN]
        events = Event.objects.filter(id__in=newest).exclude(kind__in=QUIET_KINDS).order_by("-id")
    return [activity_row(event) for event in audience.visible(events)[:limit]]


# The families of events, as the history's filter offers them (the part of `kind` before the dot).
FAMILIES = {"job": "Jobs", "execution": "Schedule runs", "schedule": "Schedules", "budget": "Budget",
            "queue": "Queue", "team": "Team", "member": "Members", "token": "API tokens",
            "notification": "Notifications"}


@dataclass(frozen=True)
class ActivityFilter:
    family: str = ""  # a key of FAMILIES: only its events
    subject: str = ""  # only the events of this id (JB_…, SP_…)
    everything: bool = False  # progress and log lines too


def activity_history(*, team: Team, audience: Audience, filters: ActivityFilter, before: int | None = None,
                     limit: int = RECENT_EVENTS) -> tuple[list[Event], int | None]:
    """The team's events that `audience` sees, newest first, keyset-paginated by id: `before` is the
    previous page's cursor. Read in bounded windows of the team's events (pulse_site.paging): a rare
    family or subject never has a page read back through the whole history, and a page cut short
    says where to carry on."""
    check_choice("family", filters.family, list(FAMILIES))
    check_page_limit(limit)
    events = audience.visible(Event.objects.filter(team=team))
    if filters.family:
        events = events.filter(kind__startswith=f"{filters.family}.")
    if filters.subject:
        events = events.filter(subject=filters.subject)
    if not filters.everything:
        events = events.exclude(kind__in=QUIET_KINDS)
    if _rare(filters):
        # Few and far between, found through their own indexes (event_team_rare_kind, …_subject),
        # however far back: no window needed.
        events = events.filter(RARE_EVENTS)
        if before:
            events = events.filter(pk__lt=before)
        page = list(events.order_by("-pk")[: limit + 1])
        return page[:limit], (page[limit - 1].pk if len(page) > limit else None)
    ids = Event.objects.filter(team=team).order_by("-pk").values_list("pk", flat=True)  # event_team_seq
    span = _job_span(team, filters.subject) if filters.subject else None
    if span is not None:
        # A job's events lie within its lifetime: read there, not back from the newest event
        # (an old job's page would otherwise say "none among the events looked through" page
        # after page in a busy team).
        low, high = span
        events, ids = events.filter(pk__gte=low), ids.filter(pk__gte=low)
        before = min(before, high + 1) if before else high + 1
    return newest_first_windowed(ids, events, below=before, limit=limit)


def _rare(filters: ActivityFilter) -> bool:
    """Whether every event the filter can match is a rare one (RARE_EVENTS): a family other than
    the jobs' and the runs', or the subject of something other than a job or a run."""
    if filters.family:
        return filters.family not in ("job", "execution")
    return bool(filters.subject) and not filters.subject.startswith(("JB_", "EX_"))


# Events are stamped by the process that writes them: allow for clocks a little apart.
SPAN_MARGIN = timedelta(minutes=5)


def _job_span(team: Team, subject: str) -> tuple[int, int] | None:
    """The ids between which the events of the team's job `subject` lie: from a little before it
    was created to a little after it ended (or now), found through the event_created index. None
    when `subject` is no job of the team (any more): its events are looked for everywhere."""
    if not looks_like_public_id(subject, "JB"):
        return None
    times = Job.objects.filter(team=team, public_id=subject).values_list("created_at", "completed_at").first()
    if times is None:
        return None
    return _event_span(times[0], times[1])


def _event_span(created: datetime, ended: datetime | None) -> tuple[int, int]:
    """The ids of the events written from a little before `created` to a little after `ended`
    (or now), through the event_created index; (0, 0) for none."""
    start, end = created - SPAN_MARGIN, (ended or timezone.now()) + SPAN_MARGIN
    first = Event.objects.filter(created_at__gte=start).order_by("created_at").values_list("pk", flat=True).first()
    last = Event.objects.filter(created_at__lte=end).order_by("-created_at").values_list("pk", flat=True).first()
    return (first, last) if first is not None and last is not None and first <= last else (0, 0)


def events_about(*, subject: str) -> Q:
    """The condition on every team's events about `subject` (a public id), for operators (the
    admin's search), that an index serves: a job's events in its team within its lifetime
    (event_team_seq, as the activity history reads them); a run's, or a job's that is gone, from
    the moment its id was made (a ULID begins with it) on, a range of the primary key; any other
    subject's through the rare events' index (event_team_rare_subject), team by team."""
    if not subject.startswith(("JB_", "EX_")):
        return RARE_EVENTS & Q(team__in=Team.objects.values("pk"), subject=subject)
    job = Job.objects.filter(public_id=subject).values_list("team_id", "created_at", "completed_at").first()
    if job is not None:
        return Q(team_id=job[0], subject=subject, pk__range=_event_span(job[1], job[2]))
    try:
        made = ULID.from_str(subject[3:]).datetime
    except ValueError:  # a timestamp past the year 10889: no id of ours
        return Q(pk__in=[])
    first = Event.objects.filter(created_at__gte=made - SPAN_MARGIN).order_by("created_at").values_list(
        "pk", flat=True).first()
    return Q(subject=subject, pk__gte=first) if first is not None else Q(pk__in=[])


def activity_row(event: Event) -> ActivityRow:
    return ActivityRow(event.id, event.kind, _label(event.kind, event.subject, event.payload),
                       activity_text(event.kind, event.payload), _link(event.kind, event.subject, event.payload),
                       event.created_at)


# The page that shows what an event of each family is about, where its subject has no page of its own.
_FAMILY_PAGES = {"member": "teams:detail", "token": "teams:detail", "team": "teams:detail",
                 "budget": "budgets:page", "queue": "queue:page", "notification": "notifications:page"}
# The payload's name for a subject people know by name, not by id (a member's user id is internal).
_FAMILY_NAMES = {"member": "username", "token": "name"}


def _label(kind: str, subject: str, payload: Any) -> str:
    name = payload.get(_FAMILY_NAMES.get(kind.partition(".")[0], "")) if isinstance(payload, dict) else None
    return name if isinstance(name, str) and name else subject


def _link(kind: str, subject: str, payload: Any) -> str | None:
    if subject.startswith("JB_"):
        return reverse("jobs:detail", args=[subject])
    if subject.startswith("SP_"):
        return reverse("schedules:detail", args=[subject])
    schedule = payload.get("schedule") if isinstance(payload, dict) else None
    if subject.startswith("EX_") and isinstance(schedule, str) and schedule.startswith("SP_"):
        return reverse("schedules:detail", args=[schedule])
    page = _FAMILY_PAGES.get(kind.partition(".")[0])
    return reverse(page) if page else None


def activity_text(kind: str, payload: Any) -> str:
    """What happened, in words: a sentence for the events people watch, the payload's own
    `message` for the budget's, `key: value, …` for the rest; cut at TEXT_LENGTH."""
    family, _, verb = kind.partition(".")
    describe = _DESCRIBE.get(family)
    text = describe(verb, payload) if describe is not None and isinstance(payload, dict) else ""
    if not text and isinstance(payload, dict) and isinstance(payload.get("message"), str):
        text = payload["message"]
    if not text and isinstance(payload, dict):
        text = _changes(payload)
    text = text or payload_summary(payload)
    return text if len(text) <= TEXT_LENGTH else text[: TEXT_LENGTH - 1] + "…"


def payload_summary(payload: Any) -> str:
    """`key: value, …` on one line."""
    if not isinstance(payload, dict):
        return json.dumps(payload)
    return ", ".join(f"{key}: {value if isinstance(value, str) else json.dumps(value, separators=(',', ':'))}"
                     for key, value in payload.items())


def _job(verb: str, p: dict[str, Any]) -> str:
    if verb == "progress":
        count = f"{p.get('current')}/{p['total']}" if p.get("total") else ""
        return " ".join(part for part in (count, str(p.get("message") or "")) if part)
    if verb == "log":
        where = " / ".join(str(part) for part in (p.get("stage"), p.get("task")) if part)
        return f"{'[' + where + '] ' if where else ''}{p.get('level', 'info')}: {p.get('message', '')}"
    words = {"created": "queued", "paused": "held", "expedited": "asked to start now"}.get(verb, verb)
    text = f"{p.get('handler', 'job')} {words}"
    # Who did it: the submitter of a new job, the person or token behind an action on one (a
    # person's hold says so in its reason).
    who = p.get("created_by") if verb == "created" else p.get("by")
    if who and isinstance(who, str) and verb != "paused":
        text += f" by {who}"
    error = p.get("error") if isinstance(p.get("error"), dict) else None
    if verb == "started" and p.get("attempts"):
        text += f", attempt {p['attempts']} of {p.get('max_attempts')}"
    elif verb == "completed" and p.get("cost_actual") not in (None, "0"):
        text += f", cost {grouped(str(p['cost_actual']))}"
    elif verb in ("failed", "retrying") and error:
        text += f": {error.get('code')}: {error.get('message')}"
    elif verb == "cancelled" and p.get("stopped"):
        text += f": {p['stopped']}"
    elif verb == "paused" and (reasons := hold_reasons_text(p.get("hold_reasons"))):
        text += f": {reasons}"
    return text


def _execution(verb: str, p: dict[str, Any]) -> str:
    trigger = f" ({p['trigger']})" if p.get("trigger") else ""
    text = f"Run {verb}{trigger}"
    if verb == "fired" and (ahead := _seconds_between(p.get("created_at"), p.get("fire_time"))) >= 1:
        # Written ahead of its slot (the ticker's next run, queued for its time): not started yet.
        text = f"Run queued{trigger}, starts at its slot in {duration(ahead * 1000)}"
    reason = str(p.get("reason") or "")
    if reason.lower().startswith(f"{verb}:"):  # "Skipped: the run of … is still paused."
        reason = reason[len(verb) + 1:].strip()
    if reason:
        text += f": {reason}"
    if p.get("job"):
        text += f", job {p['job']}"
    return text


def _seconds_between(start: Any, end: Any) -> float:
    """Seconds from one ISO time of a payload to another; 0 when either is missing or malformed."""
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return 0


def _schedule(verb: str, p: dict[str, Any]) -> str:
    if verb == "over_budget":
        # Once per streak of runs a limit refused (schedules.services._alert_over_budget_once).
        text = f"Schedule {p.get('name', '')} runs are refused by the budget".replace("  ", " ")
        return text + (f": {p['reason']}" if p.get("reason") else "")
    name = f"Schedule {p.get('name', '')}".rstrip()
    fields = p.get("fields") if isinstance(p.get("fields"), list) else None
    if verb == "changed" and p.get("change") == "created":
        return f"{name} created" + _by(p)
    if verb == "changed" and fields == ["enabled"]:
        return f"{name} {'resumed' if p.get('enabled') else 'paused'}" + _by(p)
    if verb == "changed" and fields:
        before = p.get("before") if isinstance(p.get("before"), dict) else {}
        if not before:
            return f"{name}: {', '.join(_field(f) for f in fields)} changed" + _by(p)
        parts = [f"{_field(f)} {_value(before[f])} → {_value(p.get(f))}" if f in before else _field(f) for f in fields]
        return f"{name} changed{_by(p)}: {', '.join(parts)}"
    text = f"{name} {verb}"
    if verb == "broken" and p.get("broken_reason"):
        text += f": {p['broken_reason']}"
    return text + (_by(p) if verb in ("changed", "deleted") else "")


def _member(verb: str, p: dict[str, Any]) -> str:
    who = p.get("username", "A member")
    if verb == "changed" and p.get("role"):
        return f"{p['by']} made {who} {p['role']}" if p.get("by") else f"{who} is now {p['role']}"
    role = f" as {p['role']}" if p.get("role") and verb != "removed" else ""
    return f"{who} {verb}{role}" + _by(p)


def _token(verb: str, p: dict[str, Any]) -> str:
    access = f" ({p['access']})" if p.get("access") else ""
    why = f": {p['why']}" if p.get("why") else ""
    return f"Token {p.get('name', '')}{access} {verb}" + _by(p) + why


def _field(name: object) -> str:
    return str(name).replace("_", " ")


def _value(value: object) -> str:
    """A changed setting's value as a line of activity shows it: quoted, cut at 40 characters."""
    if value is None or value == "":
        return "none"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"“{text if len(text) <= 40 else text[:39] + '…'}”"


def _by(p: dict[str, Any]) -> str:
    return f" by {p['by']}" if isinstance(p.get("by"), str) and p["by"] else ""


def _queue(verb: str, p: dict[str, Any]) -> str:
    what = f"Handler {p['handler']}" if p.get("handler") else "The queue"
    who = p.get("ended_by") if verb == "resumed" else p.get("by")
    text = f"{what} {verb}" + (f" by {who}" if who else "")
    return text + (f": {p['reason']}" if verb == "paused" and p.get("reason") else "")


def _notification(verb: str, p: dict[str, Any]) -> str:
    """A target's or a rule's change: "Target Ops (webhook) added by alice", "Rule job_failed →
    Ops: handlers, enabled changed by token ci"."""
    what, _, done = verb.partition("_")  # target_added → target, added
    if what == "target":
        text = f"Target {p.get('name', '')}" + (f" ({p['kind']})" if done == "added" and p.get("kind") else "")
    else:
        text = f"Rule {p.get('rule', '')} → {p.get('target', '')}"
    changed = p.get("changed") if isinstance(p.get("changed"), list) else []
    if done == "changed" and changed:
        words = {"secret": "signing secret",
                 "enabled": "enabled" if p.get("enabled") else "disabled"}
        text += ": " + ", ".join(str(words.get(field, field)) for field in changed)
    return f"{text} {done}" + _by(p) + (f": {p['why']}" if p.get("why") else "")


def _budget(verb: str, p: dict[str, Any]) -> str:
    """An override and its use, a job that cost more than its estimate, counts repaired; an alert
    says its own `message`, a policy change goes as any settings change."""
    if verb == "override":
        text = f"Override of up to {_amount(p.get('amount'))}{_until(p.get('expires_at'))} created" + _by(p)
        return text + (f": {p['reason']}" if p.get("reason") else "")
    if verb == "override_used":
        return f"Override let {p.get('job', 'a job')} start, using {_amount(p.get('amount'))} of it"
    if verb == "override_ended":
        return "Override ended" + _by(p)
    if verb == "overrun":
        return (f"{p.get('handler', 'A job')} cost {_amount(p.get('actual'))}, {_amount(p.get('over_by'))} over its "
                f"estimate of {_amount(p.get('estimate'))}" + (f" (attempt {p['attempt']})" if p.get("attempt") else ""))
    if verb == "drift":
        drifts = p.get("drifts")
        return f"Budget counts repaired against the ledger ({len(drifts) if isinstance(drifts, list) else 0} corrected)"
    return ""


def _amount(value: object) -> str:
    return grouped(value) if isinstance(value, str) else "?"


def _until(value: object) -> str:
    try:
        return f" until {datetime.fromisoformat(str(value)).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return ""


def _changes(p: dict[str, Any]) -> str:
    """A settings change (`by`, `before`, `after`): what changed, from what to what."""
    before, after = p.get("before"), p.get("after")
    if not isinstance(before, dict) or not isinstance(after, dict):
        return ""
    changed = [f"{key} {old} → {new}" for key, old, new in setting_changes(before, after)]
    return f"{p.get('by', 'Someone')} changed {', '.join(changed)}" if changed else ""


_DESCRIBE: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "job": _job, "execution": _execution, "schedule": _schedule, "member": _member, "token": _token,
    "queue": _queue, "notification": _notification, "budget": _budget,
}
