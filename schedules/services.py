"""Creating, editing, pausing, resuming, running and deleting schedules; firing them.

One set of rules for the dashboard, the API, the admin and code: every write goes through
`_clean`, so a schedule that exists is one the tick can fire (until a handler changes under it;
then the tick marks it broken and an edit that validates heals it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from budgets.money import parse_money, to_micros
from jobs.handlers.registry import get_public_handler, registered_handlers
from jobs.models import Job
from jobs.services import SubmitItem, job_cancel, job_submit, job_submit_many, payload_validate
from pulse_site.errors import Conflict, FieldErrors, PulseError, Unprocessable, ValidationError, choose_one_of
from pulse_site.outage import is_database_outage
from pulse_site.teams.models import Team
from pulse_site.teams.services import team_check_takes_work, teams_refusing_work
from schedules import cron as cronlib
from schedules.events import execution_event, execution_summary, schedule_event, schedule_summary
from schedules.models import Execution, Schedule

log = logging.getLogger("pulse.schedules")

EDITABLE = ("name", "description", "handler", "payload", "cron", "time_zone", "enabled", "overlap_policy",
            "misfire_policy", "estimate_override")
# Due schedules claimed per transaction by one ticker: fired together (one INSERT of jobs, one of
# executions, one of events, one dispatch), so 10,000 schedules due at one minute start within
# about a second instead of one transaction (and one dispatch) each.
CLAIM_BATCH = 500
# Seconds one tick spends staging at most: the rest waits for the next round, so a big minute's
# staging (~40 s for 10,000 on a loaded machine) does not hold up the ticker's other steps
# (lease rescue, dispatch) for all that time.
STAGE_PASS_SECONDS = 5.0
# Fields whose change moves the next fire time.
TIMING = ("cron", "time_zone", "enabled")
# Fields a staged run was decided or written with: changing one withdraws it.
STAGED_WITH = (*TIMING, "handler", "payload", "estimate_override", "overlap_policy")


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every field valid, or one ValidationError naming each bad field and why."""
    errors = FieldErrors()
    out: dict[str, Any] = {}
    name = values["name"]
    if not isinstance(name, str) or not name.strip():
        errors.add_reason("name", "A name is required.")
    elif len(name.strip()) > 100:
        errors.add_reason("name", "At most 100 characters.")
    else:
        out["name"] = name.strip()
    description = values["description"]
    if not isinstance(description, str) or len(description) > 2000:
        errors.add_reason("description", "Text of at most 2000 characters.")
    else:
        out["description"] = description
    for key, checker in (("cron", cronlib.cron_parse), ("time_zone", cronlib.zone_get)):
        with errors.collect(PulseError):
            checker(values[key])
            out[key] = " ".join(values[key].split()) if key == "cron" else values[key]
    if not isinstance(values["enabled"], bool):
        errors.add_reason("enabled", "true or false.")
    out["enabled"] = values["enabled"]
    for key, choices in (("overlap_policy", Schedule.Overlap), ("misfire_policy", Schedule.Misfire)):
        if values[key] not in choices.values:
            errors.add_reason(key, choose_one_of(choices.values))
        out[key] = values[key]
    override = values["estimate_override"]
    if override in (None, ""):
        out["estimate_override"] = None
    elif isinstance(override, int) and not isinstance(override, bool) and values.get("_micros"):
        out["estimate_override"] = override
    else:
        with errors.collect(PulseError):
            out["estimate_override"] = to_micros(parse_money(override, field="estimate_override"))
    with errors.collect(PulseError):
        out.update(_clean_work(values["handler"], values["payload"], out.get("estimate_override")))
    errors.raise_any()
    return out


def _clean_work(handler: object, payload: object, override: int | None) -> dict[str, Any]:
    """The handler exists, the payload fits its schema, and a run can be estimated."""
    if not isinstance(handler, str):
        raise ValidationError.for_field("handler", "A handler name is required.")
    spec = get_public_handler(handler)
    body = payload_validate(spec=spec, payload=payload)
    if override is None:
        spec.estimate_micros(body)
    # Kept as written: each run's submit fills in the defaults of the handler deployed then.
    return {"handler": handler, "payload": payload}


def schedule_validate(*, team: Team, values: Mapping[str, Any]) -> dict[str, Any]:
    """The cleaned values of a schedule (for forms that check before saving, like the admin's);
    ValidationError naming each bad field. Create and update run the same checks themselves."""
    defaults = {"description": "", "payload": {}, "time_zone": team.time_zone, "enabled": True,
                "overlap_policy": Schedule.Overlap.SKIP, "misfire_policy": Schedule.Misfire.ONCE,
                "estimate_override": None, "name": "", "handler": "", "cron": ""}
    return _clean({**defaults, **{k: v for k, v in values.items() if k in EDITABLE}})


def _next_slot(schedule: Schedule, after: datetime) -> datetime:
    return cronlib.next_fire(cronlib.cron_parse(schedule.cron), cronlib.zone_get(schedule.time_zone), after)


def schedule_create(
    *,
    team: Team,
    name: str,
    handler: str,
    cron: str,
    payload: object = None,
    time_zone: str | None = None,
    description: str = "",
    enabled: bool = True,
    overlap_policy: str = Schedule.Overlap.SKIP,
    misfire_policy: str = Schedule.Misfire.ONCE,
    estimate_override: object = None,
    created_by: str = "",
) -> Schedule:
    """A validated schedule; its first run is the first slot after now (in its zone, default the team's)."""
    clean = _clean({
        "name": name, "description": description, "handler": handler,
        "payload": {} if payload is None else payload, "cron": cron, "time_zone": time_zone or team.time_zone,
        "enabled": enabled, "overlap_policy": overlap_policy, "misfire_policy": misfire_policy,
        "estimate_override": estimate_override,
    })
    now = timezone.now()
    schedule = Schedule(team=team, created_by=created_by[:150], created_at=now, updated_at=now, **clean)
    schedule.next_run_at = _next_slot(schedule, now) if schedule.enabled else None
    with transaction.atomic():
        team_check_takes_work(team=team)
        schedule.save()
        schedule_event(schedule, "changed", change="created", by=created_by)
    return schedule


def schedule_update(*, schedule: Schedule, changes: Mapping[str, Any], by: str = "",
                    paused_reason: str = "") -> Schedule:
    """Apply `changes` (any of EDITABLE) after validating the whole result; a broken schedule that
    now validates is healed and fires from the next slot after now. `paused_reason`: why a pause
    was not a person's own choice (schedule_pause). Enabling a retired team's schedule is refused."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationError.for_field(name, "This field cannot be changed.")
    with transaction.atomic():
        # Before the schedule's lock (a retirement takes the team's lock, then its schedules); read
        # here, refused below only when the change enables it.
        retired = teams_refusing_work(team_ids=[schedule.team_id]).get(schedule.team_id) \
            if "enabled" in changes else None
        schedule = Schedule.objects.select_for_update().get(pk=schedule.pk)
        current = {key: getattr(schedule, key) for key in EDITABLE}
        merged = {**current, **changes, "_micros": "estimate_override" not in changes}
        clean = _clean(merged)
        changed = [key for key in EDITABLE if key in clean and clean[key] != current[key]]
        if not changed and not schedule.is_broken:
            return schedule  # nothing to save, nor to tell
        if retired is not None and clean["enabled"] and not current["enabled"]:
            raise retired
        retime = schedule.is_broken or any(clean[key] != current[key] for key in TIMING)
        now = timezone.now()
        # Paused: a run staged for a slot that came but that no worker has had yet goes too.
        withdrawn = _withdraw_staged(schedule, now, by=by, unsent=not clean["enabled"]) if any(
            clean[key] != current[key] for key in STAGED_WITH) else None
        was = schedule_summary(schedule)
        for key, value in clean.items():
            setattr(schedule, key, value)
        schedule.broken_reason = ""
        schedule.paused_reason = "" if schedule.enabled else (paused_reason[:200] or schedule.paused_reason)
        schedule.updated_at = now
        if retime:
            # Runs missed while paused or broken are not fired: the next run is the next slot from now.
            schedule.next_run_at = _next_slot(schedule, now) if schedule.enabled else None
        elif withdrawn is not None:
            # The withdrawn slot is still to come: fired (or staged again) as the schedule now says.
            schedule.next_run_at = withdrawn
        schedule.save()
        # What each short setting was (the event carries what it is now); payload and description
        # are named only.
        schedule_event(schedule, "changed", change="updated", by=by, fields=changed,
                       before={key: was[key] for key in changed if key in was},
                       **({"reason": paused_reason} if paused_reason and not schedule.enabled else {}))
    return schedule


def schedule_pause(*, schedule: Schedule, by: str = "", reason: str = "") -> Schedule:
    """Stop firing; the schedule keeps its history. Pausing a paused schedule changes nothing.
    `reason`: why, when not a person's own choice ("team retired"); its page says it until resumed."""
    if not schedule.enabled:
        return schedule
    return schedule_update(schedule=schedule, changes={"enabled": False}, by=by, paused_reason=reason)


def schedule_resume(*, schedule: Schedule, by: str = "") -> Schedule:
    """Fire again from the next slot after now: runs missed while paused are not caught up."""
    if schedule.enabled:
        return schedule
    return schedule_update(schedule=schedule, changes={"enabled": True}, by=by)


def schedule_delete(*, schedule: Schedule, by: str = "") -> None:
    """Delete the schedule and its execution history; the jobs it created stay, except a run
    staged for a slot still to come, which is cancelled."""
    with transaction.atomic():
        locked = Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
        if locked is not None:
            _withdraw_staged(locked, timezone.now(), by=by, unsent=True)
        schedule_event(schedule, "deleted", by=by)
        Schedule.objects.filter(pk=schedule.pk).delete()


def schedule_trigger(*, schedule: Schedule, by: str = "") -> Execution:
    """Run now: a manual execution and a job with the schedule's payload, through the same submit
    and, in the worker, the same admission gate as a cron run. The overlap policy does not apply:
    a person asked for this run (but a cron run staged while nothing was unfinished is withdrawn,
    so that its slot is decided at the slot under the skip policy)."""
    with transaction.atomic():
        team_check_takes_work(team=schedule.team_id)  # before the schedule's lock (teams_refusing_work)
        if schedule.overlap_policy == Schedule.Overlap.SKIP:
            locked = Schedule.objects.select_for_update().get(pk=schedule.pk)
            withdrawn = _withdraw_staged(locked, timezone.now(), by=by)
            if withdrawn is not None:
                schedule.next_run_at = withdrawn
                Schedule.objects.filter(pk=schedule.pk).update(next_run_at=withdrawn)
        execution = _fire(schedule, fire_time=timezone.now(), trigger=Execution.Trigger.MANUAL, by=by)
        assert execution is not None  # manual slots are never contested
    return execution


# --- Firing ----------------------------------------------------------------------------------


def _unfinished_run(schedule: Schedule) -> Execution | None:
    return (
        Execution.objects.filter(schedule=schedule, job__status__in=Job.ACTIVE)
        .select_related("job").order_by("-id").first()
    )


def _fire(schedule: Schedule, *, fire_time: datetime, trigger: str, by: str = "", missed: str = "") -> Execution | None:
    """Record the execution of one slot and submit its job; None if another ticker fired the slot.
    `missed` says which slots no ticker ran at (_missed_reason): the reason of this run, or of its
    skip when the misfire policy skips them.

    The unique (schedule, fire_time) key is the final guard between tickers: job and execution are
    written in one savepoint, and an IntegrityError on the execution ("already fired") rolls both back.
    """
    now = timezone.now()
    execution = Execution(schedule=schedule, team_id=schedule.team_id, fire_time=fire_time, trigger=trigger,
                          created_at=now, reason=missed)
    blocker = _unfinished_run(schedule) if trigger == Execution.Trigger.CRON and \
        schedule.overlap_policy == Schedule.Overlap.SKIP else None
    if blocker is not None:
        execution.outcome = Execution.Status.SKIPPED
        # In the jobs list's words ("held", not the status value "paused").
        still = blocker.job.get_status_display().lower()  # type: ignore[union-attr]
        execution.reason = f"Skipped: the run of {blocker.job.public_id} is still {still}."  # type: ignore[union-attr]
        execution.finished_at = now
    elif missed and schedule.misfire_policy == Schedule.Misfire.SKIP:
        execution.outcome = Execution.Status.SKIPPED
        execution.finished_at = now
    skipped = execution.outcome == Execution.Status.SKIPPED
    try:
        with transaction.atomic():
            if not skipped:
                try:
                    with transaction.atomic():
                        execution.job = job_submit(
                            team=schedule.team, handler=schedule.handler, payload=schedule.payload,
                            source=Job.Source.SCHEDULE, created_by=(by or f"schedule {schedule.public_id}")[:150],
                            estimate_micros=schedule.estimate_override, origin=schedule.public_id,
                            # A cron slot: the ticker holds the schedule's row (schedule_fire_due).
                            schedule_locked=trigger == Execution.Trigger.CRON,
                        ).job
                except Unprocessable as exc:
                    if exc.code != "over_budget_limit":
                        raise
                    # Not broken: raising the limit lets the next slot run. This slot failed.
                    execution.outcome = Execution.Status.FAILED
                    execution.reason = exc.message
                    execution.finished_at = now
            execution.save()
    except IntegrityError:
        if Execution.objects.filter(schedule=schedule, fire_time=fire_time, trigger=trigger).exists():
            return None
        raise
    if not skipped:
        schedule.last_run_at = fire_time
        if trigger == Execution.Trigger.MANUAL:
            Schedule.objects.filter(pk=schedule.pk).update(last_run_at=schedule.last_run_at)
    if execution.outcome == Execution.Status.FAILED:
        execution_event(execution, "failed")
        _alert_over_budget_once(schedule, execution)
    else:
        execution_event(execution, "skipped" if skipped else "fired")
    return execution


def _alert_over_budget_once(schedule: Schedule, execution: Execution) -> None:
    """One `schedule.over_budget` alert per streak of runs refused by a limit, not one per slot."""
    previous = (
        Execution.objects.filter(schedule=schedule).exclude(pk=execution.pk)
        .order_by("-fire_time", "-id").values_list("outcome", flat=True).first()
    )
    if previous != Execution.Status.FAILED:
        schedule_event(schedule, "over_budget", reason=execution.reason, execution=execution.public_id)


def _withdraw_staged(schedule: Schedule, now: datetime, *, by: str = "", keep: Job | None = None,
                     unsent: bool = False) -> datetime | None:
    """Cancel the runs of `schedule` (locked) staged for slots still to come (`unsent`: also those
    whose slot has come but that no worker has had yet) and forget their executions, so each such
    slot is fired again as the schedule now says; returns the earliest of those slots, or None. A
    staged run a person cancelled stays as it is (and `keep`'s)."""
    to_come = Q(fire_time__gt=now) | (Q(job__start_by__isnull=False, job__attempts=0) if unsent else Q(pk__in=[]))
    staged = list(
        Execution.objects.filter(to_come, schedule=schedule, trigger=Execution.Trigger.CRON,
                                 job__status__in=(Job.Status.QUEUED, Job.Status.PAUSED))
        .exclude(job=keep).select_related("job").order_by("fire_time")
    )
    for execution in staged:
        assert execution.job is not None
        job_cancel(job=execution.job, by=by or f"schedule {schedule.public_id} changed before the slot")
    if not staged:
        return None
    Execution.objects.filter(pk__in=[e.pk for e in staged]).delete()
    # Staging set the last run to the withdrawn slot: back to the last run fired.
    schedule.last_run_at = _last_fired(schedule.pk, now)
    Schedule.objects.filter(pk=schedule.pk).update(last_run_at=schedule.last_run_at)
    return staged[0].fire_time


def _last_fired(schedule_id: int, now: datetime) -> datetime | None:
    """The slot of the schedule's last run that was not skipped and whose slot has come."""
    return (Execution.objects.filter(schedule_id=schedule_id, fire_time__lte=now)
            .exclude(outcome=Execution.Status.SKIPPED).order_by("-fire_time")
            .values_list("fire_time", flat=True).first())


def run_cancelled(sender: object, *, job: Job, by: str = "", **kwargs: object) -> None:
    """A run staged for a slot still to come that a person cancelled is no next run: the
    schedule's last run goes back to the last one whose slot has come (its next run is then the
    slot after, where staging had already moved it). The cancelled run stays in its history."""
    if job.source != Job.Source.SCHEDULE or job.attempts:
        return
    now = timezone.now()
    execution = Execution.objects.filter(job=job, trigger=Execution.Trigger.CRON, fire_time__gt=now).first()
    if execution is not None:
        Schedule.objects.filter(pk=execution.schedule_id, last_run_at=execution.fire_time).update(
            last_run_at=_last_fired(execution.schedule_id, now))


def _staged_housekeeping(step: Callable[[datetime], None], now: datetime) -> None:
    """Run one of the tick's steps about staged runs in a savepoint. Its failure (a bug, a row it
    cannot write) is logged and leaves the staged runs as they are, so that the schedules still
    fire: it stopped every schedule's tick. A database outage is raised, as everywhere."""
    try:
        with transaction.atomic():
            step(now)
    except Exception as exc:
        if isinstance(exc, DatabaseError) and is_database_outage(exc):
            raise
        log.exception("the schedules tick's %s failed; the schedules fire all the same", step.__name__)


def _seen_come(now: datetime) -> None:
    """A ticker is running and the slots of these staged runs have come: none is a missed slot,
    however long it then waits for room in a busy backlog (its start_by is cleared, as a hand-over
    does). One UPDATE through job_start_by, of the few runs whose slot came in the last minute."""
    Job.objects.filter(status=Job.Status.QUEUED, dispatched_at__isnull=True, attempts=0, start_by__gte=now,
                       run_after__lte=now).update(start_by=None)


def _withdraw_missed(now: datetime) -> None:
    """Runs staged for a slot that passed with no ticker to hand them over (their start_by went
    by, and the dispatcher no longer takes them): cancelled and forgotten, and each schedule's
    next run moved back to the first such slot, so that its misfire policy decides the slot with
    the others missed, as without staging (handed over late, it ran beside the run the policy
    fired, or in its place). A schedule another ticker holds is left to that ticker."""
    missed = Job.objects.filter(status=Job.Status.QUEUED, dispatched_at__isnull=True, attempts=0, start_by__lt=now)
    jobs = list(missed.values_list("pk", flat=True)[:CLAIM_BATCH])  # one read of job_start_by, usually empty
    if not jobs:
        return
    schedules = dict(Execution.objects.filter(job_id__in=jobs).values_list("job_id", "schedule_id"))
    for schedule_id in sorted(set(schedules.values())):
        with transaction.atomic():
            schedule = Schedule.objects.select_for_update(skip_locked=True).filter(pk=schedule_id).first()
            runs = [] if schedule is None else list(
                Execution.objects.filter(schedule=schedule, job__in=missed).select_related("job").order_by("fire_time"))
            # Locked and read again: a run handed over since the read above (just before its
            # start_by) may have started on a worker, and is then its slot's run.
            still = set(missed.filter(pk__in=[e.job_id for e in runs]).order_by("pk").select_for_update()
                        .values_list("pk", flat=True))
            runs = [e for e in runs if e.job_id in still]
            if schedule is None or not runs:
                continue
            for execution in runs:
                _cancel_unless_ended(execution.job, by=f"schedule {schedule.public_id}: its slot was missed (no "
                                                       "ticker ran to start it)")
            Execution.objects.filter(pk__in=[e.pk for e in runs]).delete()
            last = _last_fired(schedule.pk, now)
            start = None if schedule.next_run_at is None else min(schedule.next_run_at, runs[0].fire_time)
            Schedule.objects.filter(pk=schedule.pk).update(last_run_at=last, next_run_at=start)
    # A run whose execution went with its schedule: nothing is left to decide it.
    for pk in sorted(set(jobs) - set(schedules)):
        with transaction.atomic():
            _cancel_unless_ended(missed.filter(pk=pk).select_for_update().first(), by="its schedule is gone")


def _cancel_unless_ended(job: Job | None, *, by: str) -> None:
    if job is None:
        return
    try:
        job_cancel(job=job, by=by)
    except Conflict:
        pass  # it ended meanwhile (a person cancelled it): nothing to cancel


def run_retried(sender: object, *, job: Job, by: str = "", **kwargs: object) -> None:
    """A schedule's run whose job is retried is unfinished again: the follow-up records its new
    end, and under the skip policy a slot staged while nothing was unfinished is withdrawn, to be
    decided at the slot (skipped if the retried run is still going then), as "Run now" does."""
    if job.source != Job.Source.SCHEDULE:
        return
    execution = Execution.objects.filter(job=job).select_related("schedule").first()
    if execution is None:
        return
    Execution.objects.filter(pk=execution.pk).update(finished_at=None, ended="", duration_ms=None)
    if execution.schedule.overlap_policy != Schedule.Overlap.SKIP:
        return
    locked = Schedule.objects.select_for_update().get(pk=execution.schedule_id)
    withdrawn = _withdraw_staged(locked, timezone.now(), by=by or f"run {execution.public_id} retried", keep=job)
    if withdrawn is not None:
        Schedule.objects.filter(pk=locked.pk).update(next_run_at=withdrawn)


@dataclass
class TickResult:
    fired: int = 0
    skipped: int = 0
    broken: int = 0
    schedules: int = 0
    # Runs written ahead of their slot, and the slots they wait for.
    staged: int = 0
    staged_slots: set[datetime] = field(default_factory=set)


def _slots_to_fire(schedule: Schedule, now: datetime) -> list[datetime]:
    """The slots of this tick under the misfire policy: normally the one due slot; after downtime,
    none (skip), the latest (once) or the latest PULSE_SCHEDULE_MISFIRE_CAP (all)."""
    from django.conf import settings

    cron = cronlib.cron_parse(schedule.cron)
    zone = cronlib.zone_get(schedule.time_zone)
    first = schedule.next_run_at
    assert first is not None
    policy = schedule.misfire_policy
    keep = settings.PULSE_SCHEDULE_MISFIRE_CAP if policy == Schedule.Misfire.ALL else 1
    due = cronlib.slots_between(cron, zone, first=first, until=now, keep=keep)
    late = [slot for slot in due if now - slot > cronlib.MISFIRE_GRACE]
    if policy == Schedule.Misfire.SKIP:
        return [slot for slot in due if slot not in late]
    return due


def _is_late(schedule: Schedule, now: datetime) -> bool:
    """Whether the schedule's next slot went by with no ticker to fire it (downtime)."""
    return schedule.next_run_at is not None and now - schedule.next_run_at > cronlib.MISFIRE_GRACE


def _missed(schedule: Schedule, now: datetime) -> tuple[datetime, datetime] | None:
    """The first and the last of the slots no ticker ran at (more than MISFIRE_GRACE ago), if any."""
    first = schedule.next_run_at
    if first is None or not _is_late(schedule, now):
        return None
    cron, zone = cronlib.cron_parse(schedule.cron), cronlib.zone_get(schedule.time_zone)
    last = cronlib.slots_between(cron, zone, first=first, until=now - cronlib.MISFIRE_GRACE, keep=1)
    return (first, last[-1]) if last else None  # none: next_run_at was set to no slot of the expression


def _missed_reason(schedule: Schedule, missed: tuple[datetime, datetime], *, fired: int) -> str:
    """Which slots no ticker ran at, and what the misfire policy does about them, in words: the
    history says why a run is late, or why none ran for hours."""
    zone = cronlib.zone_get(schedule.time_zone)
    first, last = (slot.astimezone(zone) for slot in missed)
    until = last.strftime("%H:%M %Z" if last.date() == first.date() else "%Y-%m-%d %H:%M %Z")
    what = {
        Schedule.Misfire.SKIP: "skips the runs missed",
        Schedule.Misfire.ONCE: "runs once for them all: this run",
        Schedule.Misfire.ALL: f"runs each of them, the latest {settings.PULSE_SCHEDULE_MISFIRE_CAP} at most: this run"
                              + (f" and the {fired - 1} after it" if fired > 1 else ""),
    }[Schedule.Misfire(schedule.misfire_policy)]
    return f"No ticker ran at its slots from {first:%Y-%m-%d %H:%M %Z} to {until}: after downtime this schedule {what}."


def schedule_fire_due(*, schedule: Schedule, now: datetime, result: TickResult) -> None:
    """Fire what is due of one (locked) schedule and move next_run_at to the first slot after now.
    After downtime the first run fired says which slots were missed; under the skip policy a
    skipped run at the last one missed says it."""
    slots = _slots_to_fire(schedule, now)
    missed = _missed(schedule, now)
    fires = [(slot, "") for slot in slots]
    if missed and schedule.misfire_policy == Schedule.Misfire.SKIP:
        fires.insert(0, (missed[1], _missed_reason(schedule, missed, fired=0)))
    elif missed and fires:
        fires[0] = (fires[0][0], _missed_reason(schedule, missed, fired=len(fires)))
    for slot, reason in fires:
        execution = _fire(schedule, fire_time=slot, trigger=Execution.Trigger.CRON, missed=reason)
        if execution is None:
            continue
        if execution.job_id:
            result.fired += 1
        else:
            result.skipped += 1
    # Slots come from the cron expression, never from "now + interval": no drift.
    schedule.next_run_at = _next_slot(schedule, now)
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=schedule.next_run_at, last_run_at=schedule.last_run_at)


def schedule_mark_broken(*, schedule: Schedule, reason: str) -> bool:
    """Stop firing a schedule that cannot run; one `schedule.broken` event, however often it is hit."""
    reason = reason or "Unknown error"
    marked = Schedule.objects.filter(pk=schedule.pk, broken_reason="").update(
        broken_reason=reason[:2000], updated_at=timezone.now())
    if marked:
        schedule.broken_reason = reason[:2000]
        schedule_event(schedule, "broken", reason=reason[:2000])
    return bool(marked)


def _ours(now: datetime) -> Q:
    """The schedules this ticker may decide: those of a handler it has. During a rolling deploy a
    ticker still on the release before a new handler leaves that handler's slots to the tickers
    that have it, rather than marking the schedule broken; a slot all of them missed (none has the
    handler: it was removed) is taken by any ticker, and the schedule is marked broken."""
    return (Q(handler__in=[h.name for h in registered_handlers(internal=True)])
            | Q(next_run_at__lt=now - cronlib.MISFIRE_GRACE))


def _claim_due(now: datetime, skip: set[int], size: int) -> list[Schedule]:
    # SKIP LOCKED: schedules another ticker is firing are left to it; this one takes the next ones.
    # A retired team's are paused by its retirement; one enabled anyway (a raw write, a process of
    # the release before) is not fired either: its job would be refused and the schedule marked broken.
    return list(
        Schedule.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(enabled=True, broken_reason="", next_run_at__lte=now, team__retired_at__isnull=True)
        .filter(_ours(now))
        .exclude(pk__in=skip)
        .select_related("team")
        .order_by("next_run_at", "pk")[:size]
    )


def schedules_tick(*, now: datetime | None = None, batch: int = CLAIM_BATCH) -> TickResult:
    """Fire every due schedule; safe in any number of tickers at once.

    Schedules are claimed a batch per transaction (SKIP LOCKED: another ticker takes the next
    batch). The usual case (one slot due, nothing in the way) is fired for the whole batch at
    once; the rest (misfires, overlaps, refusals, errors) one by one, each in its own savepoint:
    a failing one is rolled back alone and marked broken.
    """
    now = now or timezone.now()
    result = TickResult()
    for housekeeping in (_seen_come, _withdraw_missed):
        _staged_housekeeping(housekeeping, now)
    # Schedules that hit a database error stay due; they are retried next tick, not in a loop now.
    retry_later: set[int] = set()
    while True:
        with transaction.atomic():
            claimed = _claim_due(now, retry_later, batch)
            result.schedules += len(claimed)
            for schedule in _fire_batch(claimed, now, result):
                _fire_one(schedule, now, result, retry_later)
        if len(claimed) < batch:
            break
    lead = settings.PULSE_SCHEDULE_STAGE_SECONDS
    if lead:
        _stage(now, now + timedelta(seconds=lead), batch, result)
    return result


def _claim_stageable(now: datetime, horizon: datetime, skip: set[int], size: int) -> list[Schedule]:
    # Under the skip policy a slot is staged only while no run of the schedule is unfinished:
    # then no answer can change before the slot (a manual run withdraws the staged one). One
    # that is busy is decided at its slot, as without staging.
    busy = Execution.objects.filter(schedule=OuterRef("pk"), job__status__in=Job.ACTIVE)
    return list(
        Schedule.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(enabled=True, broken_reason="", next_run_at__gt=now, next_run_at__lte=horizon,
                team__retired_at__isnull=True)
        .filter(_ours(now))
        .filter(~Q(overlap_policy=Schedule.Overlap.SKIP) | ~Exists(busy))
        .exclude(pk__in=skip)
        .select_related("team")
        .order_by("next_run_at", "pk")[:size]
    )


def _stage(now: datetime, horizon: datetime, batch: int, result: TickResult) -> None:
    """Write the runs of the slots coming before `horizon` as jobs that wait for their slot
    (run_after), so that at the slot they only need handing to workers. Each schedule's
    next_run_at moves past the staged slot; what cannot be staged (a refusal, an error, a run
    that became unfinished) is left for the tick at its slot."""
    later: set[int] = set()
    started = time.monotonic()
    while True:
        with transaction.atomic():
            claimed = _claim_stageable(now, horizon, later, batch)
            ready: list[tuple[Schedule, datetime, datetime]] = []
            blocked = _blocked([s.pk for s in claimed if s.overlap_policy == Schedule.Overlap.SKIP])
            following: dict[tuple[str, str, datetime], datetime] = {}
            for schedule in claimed:
                slot = schedule.next_run_at
                assert slot is not None
                key = (schedule.cron, schedule.time_zone, slot)
                try:
                    if key not in following:
                        following[key] = _next_slot(schedule, slot)
                except Exception:
                    later.add(schedule.pk)  # the tick at the slot marks it broken with the reason
                    continue
                if schedule.pk in blocked:
                    later.add(schedule.pk)
                else:
                    ready.append((schedule, slot, following[key]))
            refused: list[Schedule] = []
            if ready:
                try:
                    with transaction.atomic():
                        refused = _fire_together(ready, now)
                except IntegrityError:
                    refused = [s for s, _, _ in ready]
            later.update(s.pk for s in refused)
            staged = [(s, slot) for s, slot, _ in ready if s not in refused]
            result.staged += len(staged)
            result.staged_slots.update(slot for _, slot in staged)
        if len(claimed) < batch or time.monotonic() - started > STAGE_PASS_SECONDS:
            return


def _blocked(skip_policy: list[int]) -> set[int]:
    """Of these schedules, those with an unfinished run."""
    if not skip_policy:
        return set()
    return set(
        Execution.objects.filter(schedule_id__in=skip_policy, job__status__in=Job.ACTIVE)
        .values_list("schedule_id", flat=True)
    )


def schedules_next_due_in(*, now: datetime | None = None) -> float | None:
    """Seconds until the earliest enabled schedule is due (None: none is), so the ticker can wake
    at the slot instead of up to a tick after it."""
    now = now or timezone.now()
    due = (Schedule.objects.filter(enabled=True, broken_reason="", next_run_at__isnull=False,
                                   team__retired_at__isnull=True)
           .order_by("next_run_at").values_list("next_run_at", flat=True).first())
    return None if due is None else (due - now).total_seconds()


def _fire_batch(schedules: list[Schedule], now: datetime, result: TickResult) -> list[Schedule]:
    """Fire, together, the schedules with exactly one slot due and no unfinished run blocking it;
    returns the others (and any whose job was refused) for the one-by-one path."""
    slots: dict[tuple[str, str, datetime | None, str], list[datetime]] = {}
    missed: dict[tuple[str, str, datetime | None, str], str] = {}
    nexts: dict[tuple[str, str], datetime] = {}
    ready: list[tuple[Schedule, datetime, datetime]] = []
    reasons: dict[int, str] = {}
    rest: list[Schedule] = []
    for schedule in schedules:
        # Thousands of schedules share a few cron expressions: evaluate each once per batch.
        key = (schedule.cron, schedule.time_zone, schedule.next_run_at, schedule.misfire_policy)
        try:
            if key not in slots:
                slots[key] = _slots_to_fire(schedule, now)
                late = _missed(schedule, now)
                missed[key] = _missed_reason(schedule, late, fired=len(slots[key])) if late else ""
            if (schedule.cron, schedule.time_zone) not in nexts:
                nexts[(schedule.cron, schedule.time_zone)] = _next_slot(schedule, now)
        except Exception:
            rest.append(schedule)  # the one-by-one path marks it broken with the reason
            continue
        due = slots[key]
        # One slot due, on time or the run after downtime that says what was missed; the skip
        # policy's record of the slots missed is written one by one.
        if len(due) == 1 and (not missed[key] or schedule.misfire_policy != Schedule.Misfire.SKIP):
            ready.append((schedule, due[0], nexts[(schedule.cron, schedule.time_zone)]))
            reasons[schedule.pk] = missed[key]
        else:
            rest.append(schedule)
    blocked = _blocked([s.pk for s, _, _ in ready if s.overlap_policy == Schedule.Overlap.SKIP])
    rest.extend(s for s, _, _ in ready if s.pk in blocked)
    ready = [item for item in ready if item[0].pk not in blocked]
    if not ready:
        return rest
    try:
        with transaction.atomic():
            refused = _fire_together(ready, now, reasons=reasons)
    except IntegrityError:
        # Another ticker fired one of these slots (the unique key): sort it out one by one.
        return rest + [s for s, _, _ in ready]
    result.fired += len(ready) - len(refused)
    return rest + refused


def _fire_together(ready: list[tuple[Schedule, datetime, datetime]], now: datetime, *,
                   reasons: Mapping[int, str] | None = None) -> list[Schedule]:
    """Submit the run of each (schedule, slot, its next slot) and record its execution (with the
    schedule's reason in `reasons`: the slots missed after downtime), all in one go; returns the
    schedules whose job was refused."""
    from pulse_site.live.models import Event

    submitted = job_submit_many(items=[
        SubmitItem(team=schedule.team, handler=schedule.handler, payload=schedule.payload,
                   source=Job.Source.SCHEDULE, created_by=f"schedule {schedule.public_id}"[:150],
                   estimate_micros=schedule.estimate_override, origin=schedule.public_id,
                   # A staged run waits for its slot; the dispatcher hands it over from then on,
                   # until the slot is missed (no ticker ran): then the misfire policy decides it.
                   run_after=slot if slot > now else None,
                   start_by=slot + cronlib.MISFIRE_GRACE if slot > now else None)
        for schedule, slot, _ in ready
    ])
    refused: list[Schedule] = []
    executions: list[Execution] = []
    moves: dict[tuple[datetime, datetime], list[int]] = {}
    for (schedule, slot, following), job in zip(ready, submitted, strict=True):
        if not isinstance(job, Job):
            refused.append(schedule)
            continue
        executions.append(Execution(schedule=schedule, team_id=schedule.team_id, fire_time=slot,
                                    trigger=Execution.Trigger.CRON, job=job, created_at=now,
                                    reason=(reasons or {}).get(schedule.pk, "")))
        moves.setdefault((slot, following), []).append(schedule.pk)
    Execution.objects.bulk_create(executions)
    Event.objects.bulk_create([
        Event(team_id=e.team_id, kind="execution.fired", subject=e.public_id, payload=execution_summary(e))
        for e in executions
    ])
    # Slots come from the cron expression, never from "now + interval": no drift.
    for (slot, following), pks in moves.items():
        Schedule.objects.filter(pk__in=pks).update(next_run_at=following, last_run_at=slot)
    for schedule, slot, following in ready:
        if schedule not in refused:
            schedule.last_run_at, schedule.next_run_at = slot, following
    return refused


def _fire_one(schedule: Schedule, now: datetime, result: TickResult, retry_later: set[int]) -> None:
    try:
        with transaction.atomic():
            schedule_fire_due(schedule=schedule, now=now, result=result)
    except DatabaseError:
        # A lost connection or deadlock is not the schedule's fault: try again next tick.
        log.exception("firing schedule %s failed on the database", schedule.public_id)
        retry_later.add(schedule.pk)
    except Exception as exc:
        reason = exc.message if isinstance(exc, PulseError) else f"{type(exc).__name__}: {exc}"
        if schedule_mark_broken(schedule=schedule, reason=reason):
            result.broken += 1
        else:
            retry_later.add(schedule.pk)


# --- Following executions' jobs --------------------------------------------------------------


# A fired run is written with its job; one without a job a moment later lost it (deleted).
ORPHAN_GRACE = timedelta(seconds=60)


def executions_follow(*, limit: int = 500) -> int:
    """Record the end of executions whose job finished, and tell live pages; returns how many.

    Each is claimed by a conditional UPDATE on finished_at IS NULL, so with several tickers the
    event is emitted once.
    """
    done = 0
    rows = list(
        Execution.objects.filter(finished_at__isnull=True, job__isnull=False, job__status__in=Job.FINAL)
        .select_related("job", "schedule").order_by("pk")[:limit]
    )
    for execution in rows:
        job = execution.job
        assert job is not None
        finished = job.completed_at or timezone.now()
        with transaction.atomic():
            claimed = Execution.objects.filter(pk=execution.pk, finished_at__isnull=True).update(
                finished_at=finished, duration_ms=execution.duration, ended=job.status)
            if not claimed:
                continue
            execution.finished_at, execution.ended = finished, job.status
            execution_event(execution, "completed" if job.status == Job.Status.COMPLETED else "failed")
        done += 1
    # A run whose job was deleted before this step saw it end (within a tick of its end): how it
    # ended is gone with it; it is finished as an error that says so, not left running for ever.
    orphans = Execution.objects.filter(finished_at__isnull=True, job__isnull=True, outcome="", reason="",
                                       created_at__lt=timezone.now() - ORPHAN_GRACE)
    done += orphans.update(finished_at=timezone.now(), reason="Its job was deleted before its end was recorded.")
    return done
