"""Notification targets and rules, test sends, and matching the outbox against the rules."""

from __future__ import annotations

from typing import Any

from django.core.validators import EmailValidator, URLValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from jobs.models import Job
from jobs.services import job_submit
from pulse_site.errors import Conflict, NotFound, PermissionDenied, ValidationError
from pulse_site.ids import looks_like_public_id
from pulse_site.live.models import Event, RelayCursor
from pulse_site.notifications.handlers import NOTIFY_HANDLER
from pulse_site.notifications.models import JobWatch, Rule, Target
from pulse_site.teams.models import Membership, Team

CURSOR_NAME = "notifications"
MATCH_BATCH = 500


def _require_manager(by: Membership | None) -> None:
    if by is not None and not by.can_manage:
        raise PermissionDenied("Only owners and admins manage notifications.")


def target_create(*, team: Team, name: str, kind: str, address: str, by: Membership | None,
                  created_by: str = "") -> Target:
    _require_manager(by)
    name, address = (name or "").strip(), (address or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError.for_field("name", "From 1 to 100 characters.")
    if kind not in Target.Kind.values:
        raise ValidationError.for_field("kind", "email or webhook.")
    try:
        if kind == Target.Kind.EMAIL:
            EmailValidator()(address)
        else:
            URLValidator(schemes=["http", "https"])(address)
    except DjangoValidationError:
        raise ValidationError.for_field("address", "An email address." if kind == "email" else "An http(s) URL.") from None
    try:
        with transaction.atomic():
            return Target.objects.create(team=team, name=name, kind=kind, address=address[:500],
                                         created_by=created_by[:150])
    except IntegrityError:
        raise Conflict("A target with this name exists.", code="target_exists",
                       fields={"name": ["Already used."]}) from None


def target_get_for_team(*, team: Team, target_id: str) -> Target:
    """The team's target, or 404 (also for another team's id)."""
    target = (Target.objects.filter(team=team, public_id=target_id).first()
              if looks_like_public_id(target_id, "NT") else None)
    if target is None:
        raise NotFound("No such notification target in this team.")
    return target


def notify_target_for_submit(*, team: Team, target_id: str) -> Target:
    """The target a job submission names in `notify`: the team's enabled target, else a 400 on the field."""
    target = (Target.objects.filter(team=team, public_id=target_id, enabled=True).first()
              if looks_like_public_id(target_id, "NT") else None)
    if target is None:
        raise ValidationError.for_field("notify", "No such notification target in this team.")
    return target


def job_watch_add(*, job: Job, target: Target) -> JobWatch:
    """Tell `target` once when `job` ends."""
    return JobWatch.objects.create(team_id=job.team_id, job_id=job.public_id, target=target)


def target_deliveries(*, target: Target, limit: int = 50) -> list[Job]:
    """The target's deliveries: pulse.notify jobs whose origin is the target, newest first."""
    return list(Job.objects.for_team(target.team_id).filter(handler=NOTIFY_HANDLER, origin=target.public_id)
                .order_by("-id")[:limit])


def notification_send(*, target: Target, subject: str, text: str, event: dict[str, Any], by: str = "") -> Job:
    """Queue one delivery to `target` as a pulse.notify job."""
    return job_submit(team=target.team, handler=NOTIFY_HANDLER, source=Job.Source.API,
                      payload={"target": target.public_id, "subject": subject[:200], "text": text[:5000],
                               "event": event},
                      origin=target.public_id, created_by=by or "notifications").job


def target_send_test(*, target: Target, by: str, member: Membership | None = None) -> Job:
    _require_manager(member)
    return notification_send(target=target, subject=f"Pulse test notification for {target.name}",
                             text=f"{by} sent this test from Pulse.", event={"kind": "test"}, by=by)


def rule_create(*, team: Team, target: Target, kind: str, handlers: object = None, final_only: bool = True,
                by: Membership | None) -> Rule:
    _require_manager(by)
    if target.team_id != team.pk:
        raise NotFound("No such notification target in this team.")
    if kind not in Rule.Kind.values:
        raise ValidationError.for_field("kind", f"One of {', '.join(Rule.Kind.values)}.")
    handlers = handlers or []
    if not isinstance(handlers, list) or not all(isinstance(h, str) and h for h in handlers):
        raise ValidationError.for_field("handlers", "A list of handler names (empty: every handler).")
    return Rule.objects.create(team=team, target=target, kind=kind, handlers=handlers, final_only=bool(final_only))


# --- matching the outbox ---------------------------------------------------------------------------


def _rule_kind(event: Event) -> tuple[str, bool] | None:
    """The rule kind an event may trigger, and whether it is a final failure."""
    if event.kind == "job.failed":
        return Rule.Kind.JOB_FAILED, True
    if event.kind == "job.retrying":
        return Rule.Kind.JOB_FAILED, False
    if event.kind == "budget.alert":
        return Rule.Kind.BUDGET_THRESHOLD, True
    if event.kind == "budget.overrun":
        return Rule.Kind.OVERRUN, True
    if event.kind == "schedule.broken":
        return Rule.Kind.SCHEDULE_BROKEN, True
    return None


def _message(event: Event) -> tuple[str, str]:
    p = event.payload
    if event.kind.startswith("job."):
        error = (p.get("error") or {})
        verb = "failed" if event.kind == "job.failed" else "failed an attempt and will retry"
        return (f"Job {event.subject} ({p.get('handler')}) {verb}",
                f"{error.get('code', '')}: {error.get('message', '')}".strip(": "))
    if event.kind == "budget.alert":
        return "Budget alert", str(p.get("message", ""))
    if event.kind == "schedule.broken":
        return f"Schedule {p.get('name', event.subject)} broke and stopped firing", str(p.get("reason", ""))
    return (f"Job {event.subject} cost more than estimated",
            f"{p.get('handler')}: estimate {p.get('estimate')}, actual {p.get('actual')}")


def _matches(rule: Rule, event: Event, final: bool) -> bool:
    handler = event.payload.get("handler")
    if handler == NOTIFY_HANDLER:
        return False  # a failed delivery must not notify about itself
    if rule.handlers and handler not in rule.handlers:
        return False
    return final or not rule.final_only


WATCHED_KINDS = ("job.completed", "job.failed", "job.cancelled")


def _notify_watchers(event: Event) -> int:
    if event.kind not in WATCHED_KINDS:
        return 0
    watches = list(JobWatch.objects.filter(team_id=event.team_id, job_id=event.subject).select_related("target"))
    for watch in watches:
        status = event.kind.split(".", 1)[1]
        error = event.payload.get("error") or {}
        notification_send(target=watch.target, subject=f"Job {event.subject} ({event.payload.get('handler')}) {status}",
                          text=f"{error.get('code')}: {error.get('message')}" if error else "",
                          event={"id": event.id, "kind": event.kind, "subject": event.subject,
                                 "payload": event.payload}, by="notifications")
    JobWatch.objects.filter(pk__in=[w.pk for w in watches]).delete()
    return len(watches)


def notifications_match(*, limit: int = MATCH_BATCH) -> int:
    """Queue deliveries for the events since the cursor that match a rule; the number queued.
    The cursor row is locked, so concurrent tickers never send one event twice."""
    with transaction.atomic():
        cursor = RelayCursor.objects.select_for_update(skip_locked=True).filter(name=CURSOR_NAME).first()
        if cursor is None:
            last = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
            RelayCursor.objects.get_or_create(name=CURSOR_NAME, defaults={"last_id": last})
            return 0
        events = list(Event.objects.filter(id__gt=cursor.last_id, kind__in=[*WATCHED_KINDS, "job.retrying",
                                                                             "budget.alert", "budget.overrun",
                                                                             "schedule.broken"])
                      .order_by("id")[:limit])
        queued = 0
        for event in events:
            queued += _notify_watchers(event)
            matched = _rule_kind(event)
            if matched is None:
                continue
            kind, final = matched
            for rule in Rule.objects.filter(team_id=event.team_id, kind=kind, target__enabled=True).select_related("target"):
                if _matches(rule, event, final):
                    subject, text = _message(event)
                    notification_send(target=rule.target, subject=subject, text=text, by="notifications",
                                      event={"id": event.id, "kind": event.kind, "subject": event.subject,
                                             "payload": event.payload})
                    queued += 1
        newest = Event.objects.order_by("-id").values_list("id", flat=True).first() or cursor.last_id
        cursor.last_id = events[-1].id if len(events) == limit else max(newest, cursor.last_id)
        cursor.save(update_fields=["last_id"])
    return queued
