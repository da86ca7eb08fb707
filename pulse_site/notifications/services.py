"""Notification targets and rules, test sends, and matching the outbox against the rules."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.core.validators import EmailValidator, URLValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from jobs.error_codes import ErrorCode
from jobs.events import hold_reasons_text
from jobs.handlers.http import destination_refusal_known_now
from jobs.handlers.registry import get_public_handler
from jobs.models import Job
from jobs.services import job_submit
from pulse_site.errors import Conflict, FieldErrors, NotFound, PermissionDenied, ValidationError, choose_one_of
from pulse_site.ids import looks_like_public_id
from pulse_site.live.models import Event, RelayCursor
from pulse_site.live.relay import outbox_consume
from pulse_site.live.services import event_emit
from pulse_site.notifications.handlers import NOTIFY_HANDLER, TEST_KIND
from pulse_site.notifications.models import HoldTimer, JobWatch, Rule, Target, new_secret
from pulse_site.teams.models import Membership, Team
from pulse_site.teams.services import member_name

CURSOR_NAME = "notifications"
MATCH_BATCH = 500
MAX_HELD_MINUTES = 7 * 24 * 60
# A rule's handler filter: more names than any deployment ships is a mistake, not a filter.
MAX_RULE_HANDLERS = 100


def _require_manager(by: Membership | None) -> None:
    if by is not None and not by.can_manage:
        raise PermissionDenied("Only owners and admins manage notifications.")


def _audit(team_id: int, verb: str, subject: str, *, by: Membership | None, who: str, **payload: Any) -> None:
    """The team's event for a change of its notifications: who pointed what where (a target's
    address is not repeated: it may carry a secret in its URL)."""
    event_emit(team=team_id, kind=f"notification.{verb}", subject=subject,
               payload={**payload, "by": who or member_name(by)})


def _target_facts(target: Target) -> dict[str, Any]:
    return {"name": target.name, "kind": target.kind, "enabled": target.enabled}


def _rule_facts(rule: Rule) -> dict[str, Any]:
    return {"rule": rule.kind, "target": rule.target.name, "enabled": rule.enabled}


def _clean_target_fields(*, name: str, kind: str, address: str) -> tuple[str, str, str]:
    name, address = (name or "").strip(), (address or "").strip()
    if not 1 <= len(name) <= 100:
        raise ValidationError.for_field("name", "From 1 to 100 characters.")
    if kind not in Target.Kind.values:
        raise ValidationError.for_field("kind", "email or webhook.")
    try:
        if len(address) > 500:
            raise DjangoValidationError("too long")
        if kind == Target.Kind.EMAIL:
            EmailValidator()(address)
        else:
            URLValidator(schemes=["http", "https"])(address)
            _ = urlsplit(address).port  # ValueError past 65535, which URLValidator lets by (and httpx refuses)
    except (DjangoValidationError, ValueError):
        raise ValidationError.for_field("address", "An email address." if kind == "email" else "An http(s) URL.") from None
    refusal = destination_refusal_known_now(address) if kind == Target.Kind.WEBHOOK else None
    if refusal:
        # Said now, not as a failed delivery later (the delivery checks again, DNS included).
        raise ValidationError.for_field("address", refusal)
    return name, kind, address


def _name_taken() -> Conflict:
    return Conflict("A target with this name exists.", code="target_exists", fields={"name": ["Already used."]})


def target_validate(*, team: Team, name: str, kind: str, address: str, target: Target | None = None) -> None:
    """The checks of target_create and target_update, for forms that check before saving (the
    admin's): ValidationError naming the bad field, Conflict on `name` for a name the team uses."""
    name, _, _ = _clean_target_fields(name=name, kind=kind, address=address)
    others = Target.objects.filter(team=team, name=name)
    if target is not None:
        others = others.exclude(pk=target.pk)
    if others.exists():
        raise _name_taken()


def target_create(*, team: Team, name: str, kind: str, address: str, by: Membership | None,
                  created_by: str = "") -> Target:
    _require_manager(by)
    name, kind, address = _clean_target_fields(name=name, kind=kind, address=address)
    try:
        with transaction.atomic():
            target = Target.objects.create(team=team, name=name, kind=kind, address=address,
                                           created_by=created_by[:150])
            _audit(team.pk, "target_added", target.public_id, by=by, who=created_by, **_target_facts(target))
            return target
    except IntegrityError:
        raise _name_taken() from None


def target_rotate_refusal(*, kind: str) -> ValidationError | None:
    """Why target_update would refuse a new signing secret for a target of `kind`, or None when it
    would give one (the notifications page offers "Rotate secret" by this): only a webhook's
    deliveries are signed."""
    if kind != Target.Kind.WEBHOOK:
        return ValidationError.for_field("rotate_secret",
                                         f"Only webhook targets have a signing secret; {kind} targets have none.")
    return None


def target_update(*, target: Target, changes: dict[str, Any], by: Membership | None, who: str = "") -> Target:
    """Rename a target, point it elsewhere (its kind and address are checked together), turn it
    on or off, or give a webhook a new signing secret (`rotate_secret`). A disabled target hears
    nothing from rules or watches; test sends still go (they are how one checks it works)."""
    _require_manager(by)
    unknown = sorted(set(changes) - {"name", "kind", "address", "enabled", "rotate_secret"})
    if unknown:
        raise ValidationError.for_field(unknown[0], "Not a field of a target that can change.")
    name, kind, address = _clean_target_fields(name=changes.get("name", target.name),
                                               kind=changes.get("kind", target.kind),
                                               address=changes.get("address", target.address))
    refusal = target_rotate_refusal(kind=kind) if changes.get("rotate_secret") else None
    if refusal is not None:
        raise refusal
    before = (target.name, target.kind, target.address, target.enabled)
    target.name, target.kind, target.address = name, kind, address
    target.enabled = bool(changes.get("enabled", target.enabled))
    changed = [field for field, old, new in zip(("name", "kind", "address", "enabled"), before,
                                                 (name, kind, address, target.enabled), strict=True) if old != new]
    if changes.get("rotate_secret"):
        target.secret = new_secret()
        changed.append("secret")
    try:
        with transaction.atomic():
            target.save(update_fields=["name", "kind", "address", "enabled", "secret"])
            if changed:
                _audit(target.team_id, "target_changed", target.public_id, by=by, who=who, changed=changed,
                       **_target_facts(target))
    except IntegrityError:
        raise _name_taken() from None
    return target


def targets_disable_for_departed(*, team_id: int, email: str, who: str, why: str) -> None:
    """Someone who left a team stops hearing from it: its enabled email targets at their address
    (in any case) are turned off, each with its event saying why; an owner may turn one back on.
    Called inside the removal's transaction (teams.services.membership_remove)."""
    email = (email or "").strip()
    if not email:
        return
    targets = Target.objects.filter(team_id=team_id, kind=Target.Kind.EMAIL, enabled=True,
                                    address__iexact=email).order_by("pk")
    for target in targets:
        Target.objects.filter(pk=target.pk).update(enabled=False)
        target.enabled = False
        _audit(team_id, "target_changed", target.public_id, by=None, who=who, changed=["enabled"], why=why,
               **_target_facts(target))


@transaction.atomic
def target_delete(*, target: Target, by: Membership | None, who: str = "") -> None:
    """Delete a target with its rules and watches; its past deliveries stay in the jobs list
    (a queued one fails: the target no longer exists)."""
    _require_manager(by)
    _audit(target.team_id, "target_removed", target.public_id, by=by, who=who, **_target_facts(target))
    target.delete()


def target_get_for_team(*, team: Team, target_id: str) -> Target:
    """The team's target, or 404 (also for another team's id)."""
    target = (Target.objects.filter(team=team, public_id=target_id).first()
              if looks_like_public_id(target_id, "NT") else None)
    if target is None:
        raise NotFound("No such notification target in this team.")
    return target


def _target_named(*, team: Team, target_id: str, field: str, enabled_only: bool = False) -> Target:
    """The team's target `target_id` names in a request's `field`, else a 400 on that field (an
    input that names nothing, not a missing page): another team's id reads as one that does not
    exist."""
    targets = Target.objects.filter(team=team, public_id=target_id)
    target = ((targets.filter(enabled=True) if enabled_only else targets).first()
              if looks_like_public_id(target_id, "NT") else None)
    if target is None:
        raise ValidationError.for_field(field, "No such notification target in this team.")
    return target


def notify_target_for_submit(*, team: Team, target_id: str) -> Target:
    """The target a job submission names in `notify`: the team's enabled target, else a 400 on the field."""
    return _target_named(team=team, target_id=target_id, field="notify", enabled_only=True)


def job_watch_add(*, job: Job, target: Target) -> JobWatch:
    """Tell `target` once when `job` ends."""
    return JobWatch.objects.create(team_id=job.team_id, job_id=job.public_id, target=target)


def target_deliveries(*, target: Target, limit: int = 50) -> list[Job]:
    """The target's deliveries: pulse.notify jobs whose origin is the target, newest first."""
    return list(Job.objects.for_team(target.team_id).filter(handler=NOTIFY_HANDLER, origin=target.public_id)
                .order_by("-id")[:limit])


def notification_send(*, target: Target, subject: str, text: str, event: dict[str, Any], by: str = "") -> Job:
    """Queue one delivery to `target` as a pulse.notify job. `event`: what the receiver's body
    carries under "event", always {"id", "kind", "subject", "payload"} (`_event_ref`,
    `_synthetic_event`). The subject is made one line: it becomes a mail's Subject header,
    which refuses a line break (a schedule's name may hold one)."""
    return job_submit(team=target.team, handler=NOTIFY_HANDLER, source=Job.Source.API,
                      payload={"target": target.public_id, "subject": " ".join(subject.split())[:200],
                               "text": text[:5000], "event": event},
                      origin=target.public_id, created_by=by or "notifications", internal=True).job


def target_send_test(*, target: Target, by: str, member: Membership | None = None) -> Job:
    _require_manager(member)
    return notification_send(target=target, subject=f"Pulse test notification for {target.name}",
                             text=f"{by} sent this test from Pulse.",
                             event=_synthetic_event(TEST_KIND, target.public_id, {}), by=by)


def _rule_target(*, team: Team, target: Target | str) -> Target:
    """A rule's target, by id or as given: the team's, else a 400 on `target` (one of another
    team's is refused as one that does not exist; a disabled one may be chosen)."""
    target_id = target.public_id if isinstance(target, Target) else str(target)
    return _target_named(team=team, target_id=target_id, field="target")


def _clean_handlers(handlers: object) -> list[str]:
    """A rule's handler filter: names a team may submit, each once, in the order given (empty:
    every handler). A name no job could have would make a rule that never matches."""
    if not isinstance(handlers, list) or not all(isinstance(h, str) and h for h in handlers):
        raise ValidationError.for_field("handlers", "A list of handler names (empty: every handler).")
    if len(handlers) > MAX_RULE_HANDLERS:
        raise ValidationError.for_field("handlers", f"At most {MAX_RULE_HANDLERS} handler names.")
    return [get_public_handler(name, field="handlers").name for name in dict.fromkeys(handlers)]


def _clean_minutes(*, kind: str, minutes: object) -> int | None:
    """Only held_long rules have a duration: it is required there and refused on any other kind
    (dropped, it would read as taken)."""
    if kind != Rule.Kind.HELD_LONG:
        if minutes is not None:
            raise ValidationError.for_field("minutes", f"Only held_long rules take minutes; a {kind} rule has none.")
        return None
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_HELD_MINUTES:
        raise ValidationError.for_field("minutes", f"A whole number of minutes from 1 to {MAX_HELD_MINUTES}.")
    return minutes


def _clean_error_codes(*, kind: str, error_codes: object) -> list[str]:
    codes = list(error_codes) if isinstance(error_codes, (list, tuple)) else None
    if codes is None or any(code not in ErrorCode.values for code in codes):
        raise ValidationError.for_field("error_codes", f"A list of error codes from {', '.join(ErrorCode.values)} "
                                                       "(empty: any code).")
    if codes and kind != Rule.Kind.JOB_FAILED:
        # As with minutes: a choice the rule would never look at is refused, not kept to mislead
        # nor dropped without a word.
        raise ValidationError.for_field("error_codes", f"Only job_failed rules take error codes; a {kind} rule has none.")
    return sorted(set(codes))


def rule_validate(*, team: Team, target: Target | str, kind: str, handlers: object, minutes: object,
                  error_codes: object, check_handlers: bool = True) -> tuple[Target, list[str], int | None, list[str]]:
    """A rule's target, handlers, minutes and error codes, cleaned (for rule_create, and forms
    that check before saving, like the admin's); ValidationError naming every bad field at once.
    `check_handlers=False` keeps a changed rule's handler names as they are (one since retired
    must not stop the rule being switched off), as rule_update does when they are not changed."""
    if kind not in Rule.Kind.values:
        raise ValidationError.for_field("kind", choose_one_of(Rule.Kind.values))
    errors = FieldErrors()  # every bad field named at once, as the other forms and bodies
    with errors.collect():
        target = _rule_target(team=team, target=target)
    with errors.collect():
        handlers = _clean_handlers(handlers or []) if check_handlers else handlers
    with errors.collect():
        minutes = _clean_minutes(kind=kind, minutes=minutes)
    with errors.collect():
        codes = _clean_error_codes(kind=kind, error_codes=error_codes)
    errors.raise_any()
    return target, handlers, minutes, codes  # type: ignore[return-value]


@transaction.atomic
def rule_create(*, team: Team, target: Target | str, kind: str, handlers: object = None, final_only: bool = True,
                minutes: object = None, enabled: bool = True, error_codes: object = (),
                by: Membership | None, who: str = "") -> Rule:
    """Add a rule telling `target` (the team's, or its id) about events of `kind`. Every input
    the API and the page send is checked here, each refusal a 400 naming its field."""
    _require_manager(by)
    target, handlers, minutes, codes = rule_validate(team=team, target=target, kind=kind, handlers=handlers,
                                                     minutes=minutes, error_codes=error_codes)
    rule = Rule.objects.create(team=team, target=target, kind=kind, handlers=handlers, final_only=bool(final_only),
                               minutes=minutes, enabled=bool(enabled), error_codes=codes)
    _audit(team.pk, "rule_added", rule.public_id, by=by, who=who, **_rule_facts(rule))
    return rule


def rule_get_for_team(*, team: Team, rule_id: str) -> Rule:
    """The team's rule, or 404 (also for another team's id)."""
    rule = (Rule.objects.filter(team=team, public_id=rule_id).select_related("target").first()
            if looks_like_public_id(rule_id, "NR") else None)
    if rule is None:
        raise NotFound("No such notification rule in this team.")
    return rule


@transaction.atomic
def rule_update(*, rule: Rule, changes: dict[str, Any], by: Membership | None, who: str = "") -> Rule:
    """Change a rule's target, handlers, error codes, last-attempt flag, minutes or enabled flag (its kind
    is what it is: delete it and add another). Timers of holds already begun follow a new
    duration; a disabled rule's timers are dropped."""
    _require_manager(by)
    fields = ("target_id", "handlers", "error_codes", "final_only", "minutes", "enabled")
    before = [getattr(rule, field) for field in fields]
    unknown = sorted(set(changes) - {"target", "handlers", "error_codes", "final_only", "minutes", "enabled"})
    if unknown:
        raise ValidationError.for_field(unknown[0], "Not a field of a rule that can change.")
    errors = FieldErrors()
    target, handlers = rule.target, rule.handlers
    with errors.collect():
        if "target" in changes:
            target = _rule_target(team=rule.team, target=changes["target"])
    with errors.collect():
        # Handlers are checked when given: a rule naming one since retired can still be switched off.
        if "handlers" in changes:
            handlers = _clean_handlers(changes["handlers"])
    with errors.collect():
        minutes = _clean_minutes(kind=rule.kind, minutes=changes.get("minutes", rule.minutes))
    with errors.collect():
        codes = _clean_error_codes(kind=rule.kind, error_codes=changes.get("error_codes", rule.error_codes))
    errors.raise_any()
    rule.target, rule.handlers, rule.minutes, rule.error_codes = target, handlers, minutes, codes
    rule.final_only = bool(changes.get("final_only", rule.final_only))
    rule.enabled = bool(changes.get("enabled", rule.enabled))
    rule.save(update_fields=["target", "handlers", "error_codes", "final_only", "minutes", "enabled"])
    changed = [field.removesuffix("_id") for field, old in zip(fields, before, strict=True) if getattr(rule, field) != old]
    if changed:
        _audit(rule.team_id, "rule_changed", rule.public_id, by=by, who=who, changed=changed, **_rule_facts(rule))
    if not rule.enabled:
        HoldTimer.objects.filter(rule=rule).delete()
    elif minutes is not None:
        HoldTimer.objects.filter(rule=rule).update(due_at=F("held_since") + timedelta(minutes=minutes))
    return rule


@transaction.atomic
def rule_delete(*, rule: Rule, by: Membership | None, who: str = "") -> None:
    _require_manager(by)
    _audit(rule.team_id, "rule_removed", rule.public_id, by=by, who=who, **_rule_facts(rule))
    rule.delete()


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


def _handler_matches(rule: Rule, handler: object) -> bool:
    if handler == NOTIFY_HANDLER:
        return False  # a delivery must not notify about itself
    return not rule.handlers or handler in rule.handlers


def _matches(rule: Rule, event: Event, final: bool) -> bool:
    if not _handler_matches(rule, event.payload.get("handler")):
        return False
    if rule.error_codes and (event.payload.get("error") or {}).get("code") not in rule.error_codes:
        return False
    return final or not rule.final_only


def _event_ref(event: Event) -> dict[str, Any]:
    return {"id": event.id, "kind": event.kind, "subject": event.subject, "payload": event.payload}


def _synthetic_event(kind: str, subject: str, payload: dict[str, Any]) -> dict[str, Any]:
    """An event of a delivery no outbox row caused (a test send, a hold timed out): the shape of
    `_event_ref`'s, with no id."""
    return {"id": None, "kind": kind, "subject": subject, "payload": payload}


WATCHED_KINDS = ("job.completed", "job.failed", "job.cancelled")
# A hold begins with job.paused and ends with whichever of these comes next for the job.
HOLD_END_KINDS = ("job.released", "job.resumed", "job.started", "job.completed", "job.failed",
                  "job.cancelled", "job.deleted")
MATCHED_KINDS = frozenset({*WATCHED_KINDS, *HOLD_END_KINDS, "job.paused", "job.retrying", "budget.alert",
                           "budget.overrun", "schedule.broken"})


@dataclass
class _Known:
    """What one batch of events is matched against, read in three queries (not several per event:
    most events concern teams with no rules and jobs nobody watches)."""

    rules: dict[tuple[int, str], list[Rule]]  # (team, kind) -> the enabled rules, targets loaded
    watched: set[tuple[int, str]]  # (team, job) with a JobWatch
    timed: set[tuple[int, str]]  # (team, job) with a HoldTimer

    @classmethod
    def load(cls, events: list[Event]) -> _Known:
        rules: dict[tuple[int, str], list[Rule]] = defaultdict(list)
        for rule in Rule.objects.filter(team_id__in={e.team_id for e in events}, enabled=True).select_related("target"):
            rules[(rule.team_id, rule.kind)].append(rule)
        jobs = {e.subject for e in events if e.kind.startswith("job.")}
        watched = set(JobWatch.objects.filter(job_id__in=jobs).values_list("team_id", "job_id")) if jobs else set()
        timed = set(HoldTimer.objects.filter(job_id__in=jobs).values_list("team_id", "job_id")) if jobs else set()
        return cls(rules=rules, watched=watched, timed=timed)


def _notify_watchers(event: Event, known: _Known) -> set[int]:
    """Tell the job's watching targets that it ended (each watch once: it is deleted); the
    targets told. A target disabled since the submit is not told."""
    key = (event.team_id, event.subject)
    if event.kind not in WATCHED_KINDS or key not in known.watched:
        return set()
    known.watched.discard(key)
    watches = list(JobWatch.objects.filter(team_id=event.team_id, job_id=event.subject).select_related("target"))
    told: set[int] = set()
    for watch in watches:
        if not watch.target.enabled or watch.target_id in told:
            continue
        status = event.kind.split(".", 1)[1]
        error = event.payload.get("error") or {}
        notification_send(target=watch.target, subject=f"Job {event.subject} ({event.payload.get('handler')}) {status}",
                          text=f"{error.get('code')}: {error.get('message')}" if error else "",
                          event=_event_ref(event), by="notifications")
        told.add(watch.target_id)
    JobWatch.objects.filter(pk__in=[w.pk for w in watches]).delete()
    return told


def _time_holds(event: Event, known: _Known) -> None:
    """Start a timer per held_long rule when a job is held; stop them when the hold ends."""
    key = (event.team_id, event.subject)
    if event.kind in HOLD_END_KINDS and key in known.timed:
        HoldTimer.objects.filter(team_id=event.team_id, job_id=event.subject).delete()
        known.timed.discard(key)
    if event.kind != "job.paused":
        return
    handler = event.payload.get("handler")
    for rule in known.rules.get((event.team_id, Rule.Kind.HELD_LONG), []):
        if _handler_matches(rule, handler) and rule.minutes:
            # get_or_create: a second job.paused without an end between them is the same hold.
            HoldTimer.objects.get_or_create(rule=rule, job_id=event.subject, defaults={
                "team_id": event.team_id, "handler": str(handler or ""), "event_id": event.id,
                "held_since": event.created_at, "due_at": event.created_at + timedelta(minutes=rule.minutes)})
            known.timed.add(key)


def _match_events(events: list[Event]) -> int:
    known = _Known.load(events)
    queued = 0
    for event in events:
        # One delivery per target and event: two rules of one target that both match (every
        # failure, and timeouts at every attempt), or a rule and a watch, would tell it the same
        # event twice, which its receiver cannot tell from a retry.
        told = _notify_watchers(event, known)
        _time_holds(event, known)
        matched = _rule_kind(event)
        if matched is not None:
            kind, final = matched
            for rule in known.rules.get((event.team_id, kind), []):
                if rule.target_id in told or not (rule.target.enabled and _matches(rule, event, final)):
                    continue
                subject, text = _message(event)
                notification_send(target=rule.target, subject=subject, text=text, by="notifications",
                                  event=_event_ref(event))
                told.add(rule.target_id)
        queued += len(told)
    return queued


def holds_due(*, now: datetime | None = None, limit: int = MATCH_BATCH) -> int:
    """Tell the targets of held_long rules about jobs still held at their timer's due time; the
    number queued. Each timer fires at most once and is deleted (so once per hold, never per tick).

    The job's own row is the truth: a job no longer held drops its timer. A job with a state event
    the match step has not read yet is left for its next run, so a job released and held again
    moments ago is timed from its new hold, not its old one.
    """
    now = now or timezone.now()
    if not HoldTimer.objects.filter(due_at__lte=now).exists():
        return 0  # lock-free: an idle step never takes SQLite's write lock
    queued = 0
    with transaction.atomic():
        timers = list(HoldTimer.objects.select_for_update(skip_locked=True).filter(due_at__lte=now)
                      .order_by("due_at")[:limit])
        job_ids = {t.job_id for t in timers}
        held = {job.public_id: job for job in Job.objects.filter(public_id__in=job_ids, status=Job.Status.PAUSED)}
        read_up_to = RelayCursor.objects.filter(name=CURSOR_NAME).values_list("last_id", flat=True).first() or 0
        unread = set(Event.objects.filter(id__gt=read_up_to, subject__in=list(held),
                                          kind__in=[*HOLD_END_KINDS, "job.paused"]).values_list("subject", flat=True))
        rules = {r.pk: r for r in Rule.objects.filter(pk__in={t.rule_id for t in timers}).select_related("target")}
        done: list[int] = []
        for timer in timers:
            job, rule = held.get(timer.job_id), rules[timer.rule_id]
            if job is not None and job.team_id != timer.team_id:
                job = None
            if job is not None and timer.job_id in unread:
                continue
            done.append(timer.pk)
            if job is None or not (rule.enabled and rule.target.enabled and _handler_matches(rule, job.handler)):
                continue
            notification_send(
                target=rule.target, by="notifications",
                subject=f"Job {job.public_id} ({job.handler}) held for more than {rule.minutes} min",
                text=hold_reasons_text(job.hold_reasons),
                event=_synthetic_event("job.held_long", job.public_id, {
                    "handler": job.handler, "held_since": timer.held_since.isoformat(), "minutes": rule.minutes,
                    "hold_reasons": job.hold_reasons}))
            queued += 1
        HoldTimer.objects.filter(pk__in=done).delete()
    return queued


def notifications_match(*, limit: int = MATCH_BATCH, max_batches: int = 20) -> int:
    """Queue deliveries for the outbox events that match a rule or a watch, and for holds that
    have lasted their rule's minutes; the number queued.

    The outbox is read through the relay's reader (pulse_site.live.relay.outbox_consume) with its
    own cursor: the same gap grace (a late-committing lower id is waited for, not skipped) and
    the same cursor lock, so concurrent tickers never send one event twice.
    """
    queued = 0

    def handle(events: list[Event]) -> None:
        nonlocal queued
        queued += _match_events(events)

    for _ in range(max_batches):
        if outbox_consume(cursor=CURSOR_NAME, handle=handle, kinds=MATCHED_KINDS, limit=limit) < limit:
            break
    return queued + holds_due()
