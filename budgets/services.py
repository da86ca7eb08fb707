"""The budget gate and everything that moves a team's budget: admission, settlement, alerts,
repair, policy changes and overrides.

Every write to a team's counters happens with the team's BudgetPolicy row locked, so admissions
and settles of one team are serialized (and other teams are not slowed), and every decision reads
the database's clock (PostgreSQL's statement_timestamp(); SQLite has no usable clock of its own,
so the embedded default uses Python's, which is the only clock on that one machine anyway).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, Min, OuterRef, Q, Sum
from django.db.models.functions import Greatest
from django.utils import timezone

from budgets.models import Alert, BudgetPolicy, HandlerCap, Ledger, Override, PolicyChange, Start, Usage
from budgets.money import money_str, money_text, parse_money, to_micros
from budgets.windows import KINDS, Window, windows_at
from pulse_site import sqlbatch
from pulse_site.errors import Conflict, FieldErrors, PermissionDenied, Unprocessable, ValidationError
from pulse_site.live.services import event_emit
from pulse_site.teams.models import Membership, Team
from pulse_site.zones import zone_names

if TYPE_CHECKING:
    from django.contrib.auth.models import User

RATE_WINDOW = timedelta(seconds=60)
HOLD_KINDS = ("budget", "rate", "concurrency")
MAX_OVERRIDE_DAYS = 30
KIND_LABEL = {"day": "daily", "week": "weekly", "month": "monthly"}


class AdmittableJob(Protocol):
    pk: Any
    team_id: int
    handler: str
    cost_estimate: int
    public_id: str
    attempts: int
    priority: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reasons: list[dict[str, Any]] = field(default_factory=list)
    resume_at: datetime | None = None
    pulse_state: dict[str, Any] = field(default_factory=dict)
    # The policy says over budget = fail: admission ends the job with `budget_exceeded` instead of holding it.
    fail: bool = False


# --- reading the state --------------------------------------------------------------------------


def db_now() -> datetime:
    """The database's clock, so that workers with skewed clocks agree on the rate window."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # statement_timestamp(), not now(): now() is when the transaction began, which may be
            # before the wait for the policy lock ended.
            cursor.execute("SELECT statement_timestamp()")
            return cursor.fetchone()[0]
    return timezone.now()


def policy_zone(policy: BudgetPolicy, team: Team | None = None) -> zoneinfo.ZoneInfo:
    name = policy.time_zone or (team or policy.team).time_zone or "UTC"
    return zoneinfo.ZoneInfo(name)


def _ensure_policy(team_id: int) -> None:
    if not BudgetPolicy.objects.filter(team_id=team_id).exists():
        # ignore_conflicts: two first admissions of a new team may both try to create it.
        BudgetPolicy.objects.bulk_create([BudgetPolicy(team_id=team_id)], ignore_conflicts=True)


def _lock_policy(team_id: int) -> BudgetPolicy:
    # Lock first and create only when missing: one query on every admit and settle, not two.
    # of=("self",): the joined team row is read, not locked. FOR UPDATE on it blocked the foreign-key
    # checks of every insert naming the team (events, stats) and deadlocked a cancel against a
    # settle (found by the soak test).
    locked = (BudgetPolicy.objects.select_for_update(of=("self",)).select_related("team")
              .filter(team_id=team_id).first())
    if locked is not None:
        return locked
    _ensure_policy(team_id)
    return BudgetPolicy.objects.select_for_update(of=("self",)).select_related("team").get(team_id=team_id)


def budget_lock_teams(team_ids: Iterable[int]) -> None:
    """Lock several teams' policy rows in team order, in one statement, for a transaction that
    settles one team's job and admits another team's (a worker's chain): every other transaction
    locks one team's row, so with these taken in one order two chains crossing the same teams in
    opposite directions cannot deadlock (they did, under load, in the soak). A team without a
    policy row yet is skipped; its row is created and locked by the admission as usual."""
    list(BudgetPolicy.objects.select_for_update(of=("self",)).filter(team_id__in=sorted(set(team_ids)))
         .order_by("team_id").values_list("pk", flat=True))


def budget_policy_get(*, team: Team) -> BudgetPolicy:
    """The team's policy, created (unlimited) on first use."""
    _ensure_policy(team.pk)
    return BudgetPolicy.objects.select_related("team").get(team=team)


@dataclass
class Snapshot:
    """What a decision needs: the policy, the handler's cap, the current windows and their usage."""

    policy: BudgetPolicy
    cap: HandlerCap | None
    handler: str
    now: datetime
    windows: list[Window]
    usage: dict[tuple[str, str], Usage]
    # Starts in the rate window and the oldest of them: counted by the database, not read row by
    # row (a team starting 100 jobs a second has 6,000 rows in the window).
    starts: int
    oldest_start: datetime | None

    def count_start(self, at: datetime) -> None:
        """A start admitted in this transaction, counted as the table will count it."""
        self.starts += 1
        if self.oldest_start is None:
            self.oldest_start = at

    def start_leaving(self, index: int, limit: int) -> datetime:
        """When the `index`-th oldest start counted in the rate window (0: the oldest) leaves it,
        bringing the count under a limit `index` below it (a limit lowered under the starts
        already counted, or jobs held before this one). Starts counted here but not yet written (a
        batch's, or jobs a release is sending ahead) are the newest: they happen now. An index
        past the starts counted is a start still to come (of a job ahead of this one): no sooner
        than now, nor than the start `limit` places before it leaves the minute, for the rate
        allows no more than `limit` in any minute: the earliest it can be, never a later one."""
        if index == 0 and self.oldest_start is not None:
            return self.oldest_start
        times = list(Start.objects.filter(team_id=self.policy.team_id, at__gt=self.now - RATE_WINDOW)
                     .order_by("at").values_list("at", flat=True)[:index + 1])
        times += [self.now] * max(0, min(self.starts, index + 1) - len(times))
        while len(times) <= index:
            earliest = times[len(times) - limit] + RATE_WINDOW if len(times) >= limit else self.now
            times.append(max(self.now, earliest))
        return times[index]

    def limits(self) -> Iterable[tuple[str, Window, int]]:
        for window in self.windows:
            team_limit = self.policy.limit_for(window.kind)
            if team_limit is not None:
                yield "", window, team_limit
            if self.cap is not None:
                cap_limit = self.cap.limit_for(window.kind)
                if cap_limit is not None:
                    yield self.handler, window, cap_limit

    def used(self, scope: str, kind: str) -> tuple[int, int]:
        row = self.usage.get((scope, kind))
        return (row.committed, row.reserved) if row else (0, 0)


def _windows(policy: BudgetPolicy, now: datetime, team: Team | None = None) -> list[Window]:
    return windows_at(now, zone=policy_zone(policy, team), week_start=policy.week_start)


def _snapshot(policy: BudgetPolicy, *, handler: str, now: datetime, create: bool) -> Snapshot:
    windows = _windows(policy, now)
    scopes = ["", handler]
    rows = {
        (u.scope, u.kind): u
        for u in Usage.objects.filter(team_id=policy.team_id, scope__in=scopes,
                                      window_start__in=[w.start for w in windows])
        if any(w.kind == u.kind and w.start == u.window_start for w in windows)
    }
    if create:
        for scope in scopes:
            for window in windows:
                if (scope, window.kind) not in rows:
                    rows[(scope, window.kind)], _ = Usage.objects.get_or_create(
                        team_id=policy.team_id, scope=scope, kind=window.kind, window_start=window.start,
                        defaults={"window_end": window.end},
                    )
    recent = Start.objects.filter(team_id=policy.team_id, at__gt=now - RATE_WINDOW).aggregate(
        n=Count("id"), oldest=Min("at"))
    cap = HandlerCap.objects.filter(team_id=policy.team_id, handler=handler).first()
    return Snapshot(policy=policy, cap=cap, handler=handler, now=now, windows=windows, usage=rows,
                    starts=recent["n"], oldest_start=recent["oldest"])


def _evaluate(snap: Snapshot, *, estimate: int, extra_micros: int = 0, extra_handler_micros: int = 0,
              held_before: int = 0) -> tuple[list[dict[str, Any]], datetime | None]:
    """Every reason the job cannot start now, and when it may (None: when a slot frees).
    `extra_micros`: estimates of jobs about to start ahead of it, against the team's limits;
    `extra_handler_micros`: those of them of its own handler, against its handler's cap;
    `held_before`: jobs of the team that come before it in the team's order and wait for a slot
    or a start, or are queued for one (`budget_held_for_a_slot_before`): the room freed is
    theirs first."""
    policy = snap.policy
    reasons: list[dict[str, Any]] = []
    resume: list[datetime] = []
    running = policy.running
    if policy.max_concurrent is not None and running + held_before >= policy.max_concurrent:
        message = (f"{running} {'job is' if running == 1 else 'jobs are'} running; the limit is "
                   f"{policy.max_concurrent} at a time")
        reasons.append({
            "kind": "concurrency", "limit": policy.max_concurrent, "running": running, "held_before": held_before,
            "message": (f"{message}, and {_jobs_held_before(held_before)} for a slot."
                        if held_before else f"{message}; it starts when one finishes."),
            "resume_at": None,
        })
    calls = snap.starts
    if policy.calls_per_minute is not None and calls + held_before >= policy.calls_per_minute:
        # Room appears when enough starts have left the window to bring the count under the
        # limit: the oldest when the count is at it, a later one when the limit was lowered,
        # one of the starts still to come of the jobs before it.
        at = snap.start_leaving(calls + held_before - policy.calls_per_minute, policy.calls_per_minute) + RATE_WINDOW
        resume.append(at)
        message = f"{calls} starts in the last 60 s; the limit is {policy.calls_per_minute} per minute"
        reasons.append({
            "kind": "rate", "limit": policy.calls_per_minute, "calls": calls, "held_before": held_before,
            "message": f"{message}, and {_jobs_held_before(held_before)} for a start." if held_before else f"{message}.",
            "resume_at": at.isoformat(),
        })
    for scope, window, limit in snap.limits():
        committed, reserved = snap.used(scope, window.kind)
        ahead = extra_handler_micros if scope else extra_micros
        if committed + reserved + ahead + estimate > limit:
            whose = f"handler {scope}'s" if scope else "the team's"
            reason = {
                "kind": "budget", "window": window.kind, "scope": scope, "limit": money_str(limit),
                "committed": money_str(committed), "reserved": money_str(reserved + ahead),
                "estimate": money_str(estimate),
                "message": (f"{money_text(committed + reserved + ahead)} spent or reserved + "
                            f"{money_text(estimate)} estimate is over {whose} {KIND_LABEL[window.kind]} "
                            f"limit of {money_text(limit)}."),
                "resume_at": window.end.isoformat(),
            }
            if estimate > limit:
                # Lowered below this job's estimate after it was submitted: no new window helps,
                # only a higher limit or an override (both release held jobs).
                reason["resume_at"] = None
                reason["message"] = (f"The estimate of {money_text(estimate)} alone is over {whose} "
                                     f"{KIND_LABEL[window.kind]} limit of {money_text(limit)}; it runs once the "
                                     f"limit is raised or an owner makes an override.")
            else:
                resume.append(window.end)
            reasons.append(reason)
    resume_at = max(resume) if resume else None
    return reasons, resume_at


def _jobs_held_before(count: int) -> str:
    if count >= AHEAD_COUNTED:
        return f"at least {count} jobs held before this one wait"
    return "1 job held before this one waits" if count == 1 else f"{count} jobs held before this one wait"


# Holds that end when a running slot frees or a start leaves the minute.
SLOT_HOLDS = ("concurrency", "rate")

# How far the jobs ahead of a held one are counted: its place is told exactly up to here.
AHEAD_COUNTED = 100


def budget_held_for_a_slot(team_id: int) -> Q:
    """The team's jobs held for a running slot or a start."""
    from jobs.models import Job  # budgets must not import jobs at module level

    return Q(team_id=team_id, status=Job.Status.PAUSED, hold_reasons__0__kind__in=SLOT_HOLDS)


def budget_queued_for_a_slot(team_id: int) -> Q:
    """The team's queued jobs that take a running slot or a start before any job they come
    before: due, a job just released among them until its worker claims it (the settle's release
    sends it back to the queue; a job submitted meanwhile, its worker quicker, must not take its
    room). Pulse's own work takes neither, and a team with neither limit keeps no one waiting for
    them: the policy's test is uncorrelated and ANDed at the top, so PostgreSQL reads it once
    and, for such a team, no job at all (a worker's chain asks after every job, for any team)."""
    from jobs.handlers.registry import registered_handlers  # budgets must not import jobs at module level
    from jobs.models import Job

    now = timezone.now()
    limited = BudgetPolicy.objects.filter(team_id=team_id).filter(
        Q(max_concurrent__isnull=False) | Q(calls_per_minute__isnull=False))
    return (Q(Exists(limited)) & Q(team_id=team_id, status=Job.Status.QUEUED)
            & (Q(run_after__isnull=True) | Q(run_after__lte=now))
            & ~Q(start_by__lt=now, attempts=0)  # a staged run that missed its slot: its schedule decides
            & ~Q(handler__in=[spec.name for spec in registered_handlers(internal=True) if not spec.metered]))


def budget_held_for_a_slot_before(*, job: AdmittableJob, most: int) -> int:
    """How many of the team's jobs waiting for a running slot or a start come before `job` in the
    team's order (priority, then age), counted up to `most` (one statement on job_team_status_id):
    held for one (budget_held_for_a_slot), or queued for one (budget_queued_for_a_slot). The
    room a settle or the minute frees is theirs: a job claimed before them (submitted then, its
    worker quicker than theirs) would take it, and they would be held again."""
    from jobs.models import Job  # budgets must not import jobs at module level

    # A job not yet written (a submit's preview) comes after every job of its priority.
    before = Q(priority__gt=job.priority) | Q(priority=job.priority, **({"pk__lt": job.pk} if job.pk else {}))
    # Two parts, not one OR: the queued part's policy test then gates its whole scan.
    held, queued = (Job.objects.filter(kind).filter(before).order_by().values("pk")
                    for kind in (budget_held_for_a_slot(job.team_id), budget_queued_for_a_slot(job.team_id)))
    return held.union(queued, all=True)[:most].count()


def _held_before(policy: BudgetPolicy, job: AdmittableJob) -> int:
    """`budget_held_for_a_slot_before` as far as the team's slot and rate limits care (nothing
    to read for a team with neither)."""
    limited = policy.max_concurrent is not None or policy.calls_per_minute is not None
    return budget_held_for_a_slot_before(job=job, most=AHEAD_COUNTED) if limited else 0


def _pulse_state(snap: Snapshot, *, calls: int, running: int) -> dict[str, Any]:
    spent: dict[str, str | None] = {}
    remaining: dict[str, str | None] = {}
    limits: dict[str, str | None] = {}
    for window in snap.windows:
        committed, reserved = snap.used("", window.kind)
        limit = snap.policy.limit_for(window.kind)
        spent[window.kind] = money_str(committed + reserved)
        limits[window.kind] = money_str(limit)
        remaining[window.kind] = None if limit is None else money_str(max(0, limit - committed - reserved))
    cpm = snap.policy.calls_per_minute
    return {
        "at": snap.now.isoformat(), "spent": spent, "limit": limits, "remaining": remaining,
        "calls_this_minute": calls, "calls_remaining": None if cpm is None else max(0, cpm - calls),
        "running": running, "max_concurrent": snap.policy.max_concurrent,
    }


# --- the gate -----------------------------------------------------------------------------------


def _money_in(reasons: list[dict[str, Any]]) -> bool:
    return any(r["kind"] == "budget" for r in reasons)


def _without_money(reasons: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], datetime | None]:
    """The reasons an override does not lift (an override lifts money limits only; the rate and the
    concurrency cap protect the handlers' targets), and when they may let the job start."""
    kept = [r for r in reasons if r["kind"] != "budget"]
    return kept, max((datetime.fromisoformat(r["resume_at"]) for r in kept if r["resume_at"]), default=None)


def _usable_override(team_id: int, estimate: int, now: datetime) -> Override | None:
    return (
        Override.objects.select_for_update()
        .filter(team_id=team_id, expires_at__gt=now, amount__gte=F("spent") + estimate)
        .order_by("expires_at", "id")
        .first()
    )


# savepoint=False: the caller's transaction (the claim) is the unit; a failure here fails the claim.
@dataclass(frozen=True)
class Locked:
    """A team's policy row locked by this transaction, and the database's clock read after the
    lock was granted: a settle hands it to the admission that follows it in one transaction."""

    policy: BudgetPolicy
    now: datetime


@transaction.atomic(savepoint=False)
def budget_admit(*, job: AdmittableJob, freed_slot: bool = False, locked: Locked | None = None) -> Decision:
    """Reserve the job's estimate and count its start, or say why it must wait.

    Called by job admission only (jobs.runner.claim), which then records attempt
    `job.attempts + 1`: the reservation is filed under that attempt for settle to find.
    `freed_slot`: the same transaction settled a job of this team with `hand_on_slot`, so its
    running slot is still counted: it passes to this job, or is freed here if this one waits.
    `locked`: that settle's lock of this team's policy (no second lock, no second clock read).
    """
    if locked is not None and locked.policy.team_id == job.team_id:
        policy, now = locked.policy, locked.now
    else:
        policy, now = _lock_policy(job.team_id), db_now()
    if freed_slot:
        policy.running -= 1
    decision = _admit(policy, job, now=now, freed_slot=freed_slot)
    if freed_slot and not decision.allowed:
        BudgetPolicy.objects.filter(pk=policy.pk).update(running=Greatest(F("running") - 1, 0))
    return decision


def _admit(policy: BudgetPolicy, job: AdmittableJob, *, now: datetime, freed_slot: bool,
           snap: Snapshot | None = None) -> Decision:
    # Old starts are pruned by the ticker (budgets.prune_starts), not here: a DELETE on every
    # admission was one statement per job; the rate query reads only the last minute anyway.
    if snap is None:
        snap = _snapshot(policy, handler=job.handler, now=now, create=True)
    estimate = job.cost_estimate
    reasons, resume_at = _evaluate(snap, estimate=estimate, held_before=_held_before(policy, job))
    override = None
    if _money_in(reasons):
        override = _usable_override(job.team_id, estimate, now)
        if override is not None:
            reasons, resume_at = _without_money(reasons)
    if reasons:
        # Failed only for money no override covers; held for anything else (a rate or the
        # concurrency cap: the override is looked for again when it comes round).
        fail = policy.over_budget == BudgetPolicy.OverBudget.FAIL and _money_in(reasons)
        return Decision(allowed=False, reasons=reasons, resume_at=resume_at, fail=fail)
    attempt = job.attempts + 1
    entries = _reserve(snap, job, now=now)
    if estimate:
        Usage.objects.filter(pk__in=[row.pk for row in snap.usage.values()]).update(reserved=F("reserved") + estimate)
    if override is not None:
        Override.objects.filter(pk=override.pk).update(spent=F("spent") + estimate)
        entries.append(Ledger(team_id=job.team_id, job_id=job.public_id, handler=job.handler, attempt=attempt,
                              kind=Ledger.Kind.OVERRIDE, amount=estimate, override=override, at=now))
        event_emit(team=job.team_id, kind="budget.override_used", subject=override.public_id,
                   payload={"job": job.public_id, "amount": money_str(estimate), "reasons": reasons})
    Ledger.objects.bulk_create(entries)
    Start.objects.create(team_id=job.team_id, at=now)
    if not freed_slot:
        BudgetPolicy.objects.filter(pk=policy.pk).update(running=F("running") + 1)
    state = _pulse_state(snap, calls=snap.starts + 1, running=policy.running + 1)
    if override is not None:
        state["override"] = override.public_id
    return Decision(allowed=True, pulse_state=state)


def _reserve(snap: Snapshot, job: AdmittableJob, *, now: datetime) -> list[Ledger]:
    """The ledger entries reserving the job's estimate for its next attempt in every window of
    the snapshot, whose rows count the reservation from here on."""
    entries = []
    for (scope, kind), row in snap.usage.items():
        entries.append(Ledger(team_id=job.team_id, job_id=job.public_id, handler=job.handler,
                              attempt=job.attempts + 1, kind=Ledger.Kind.RESERVE, scope=scope, window_kind=kind,
                              window_start=row.window_start, window_end=row.window_end, amount=job.cost_estimate,
                              at=now))
        row.reserved += job.cost_estimate
    return entries


def budget_admit_batched(*, job: AdmittableJob, policy: BudgetPolicy, team: Team, batch: sqlbatch.WriteBatch
                         ) -> Decision | None:
    """The gate's usual case for a claim that locked the team's policy row with the job itself
    (jobs.runner on PostgreSQL): the state read in one statement and, when the job may start at
    once, its reservations, start and running slot added to `batch`, which the claim writes with
    its own rows in one statement. None: `budget_admit` decides instead (a limit is in the way,
    so a hold, an override or a failure; or a current window's usage row is still to be made).
    The decision is `_evaluate`'s, on the same snapshot `budget_admit` would read."""
    snap = _snapshot_read(policy, team=team, handler=job.handler)
    if snap is None:
        return None
    reasons, _ = _evaluate(snap, estimate=job.cost_estimate, held_before=_held_before(policy, job))
    if reasons:
        return None
    batch.insert(_reserve(snap, job, now=snap.now))
    if job.cost_estimate:
        batch.update(Usage, [row.pk for row in snap.usage.values()], add={"reserved": job.cost_estimate})
    batch.insert([Start(team_id=job.team_id, at=snap.now)])
    batch.update(BudgetPolicy, [policy.pk], add={"running": 1})
    return Decision(allowed=True, pulse_state=_pulse_state(snap, calls=snap.starts + 1, running=policy.running + 1))


@cache
def _snapshot_sql() -> str:
    start, cap, usage = (model._meta.db_table for model in (Start, HandlerCap, Usage))
    # The clock is read once, after the policy lock (taken by the caller's statement before).
    return (
        f"SELECT clock.now, recent.n, recent.oldest, {sqlbatch.columns(HandlerCap, 'c')}, "  # nosec B608
        f"{sqlbatch.columns(Usage, 'u')} "
        "FROM (SELECT statement_timestamp() AS now) clock "
        "CROSS JOIN LATERAL (SELECT count(*) AS n, min(s.at) AS oldest "
        f"FROM {start} s WHERE s.team_id = %s AND s.at > clock.now - %s) recent "
        f"LEFT JOIN {cap} c ON c.team_id = %s AND c.handler = %s "
        f"LEFT JOIN {usage} u ON u.team_id = %s AND u.scope IN ('', %s) AND u.window_start = ANY(%s)"
    )


def _snapshot_read(policy: BudgetPolicy, *, team: Team, handler: str) -> Snapshot | None:
    """`_snapshot` in one statement: the clock, the starts in the rate window, the handler's cap
    and the usage rows of the current windows. The windows are guessed from this process's clock
    and checked against the database's; None at a window's edge where the two disagree, or when a
    usage row is missing (`_snapshot` creates it)."""
    windows = _windows(policy, timezone.now(), team)
    with connection.cursor() as cursor:
        params: list[Any] = [policy.team_id, RATE_WINDOW, policy.team_id, handler, policy.team_id,
                             handler, sorted({w.start for w in windows})]
        cursor.execute(_snapshot_sql(), params)
        rows = cursor.fetchall()
    now, starts, oldest = rows[0][:3]
    if _windows(policy, now, team) != windows:
        return None
    cap_at, usage_at = 3, 3 + sqlbatch.width(HandlerCap)
    cap = sqlbatch.from_row(HandlerCap, rows[0], cap_at) if rows[0][cap_at] is not None else None
    current = {(w.kind, w.start) for w in windows}
    usage = {}
    for row in rows:
        if row[usage_at] is not None:
            found = sqlbatch.from_row(Usage, row, usage_at)
            if (found.kind, found.window_start) in current:
                usage[(found.scope, found.kind)] = found
    if len(usage) != 2 * len(windows):
        return None
    return Snapshot(policy=policy, cap=cap, handler=handler, now=now, windows=windows, usage=usage, starts=starts,
                    oldest_start=oldest)


@transaction.atomic(savepoint=False)
def budget_admit_many(*, jobs: Sequence[AdmittableJob], freed_slots: int = 0, locked: Locked | None = None
                      ) -> list[Decision]:
    """Admit jobs of one team and one handler in order, as `budget_admit` would one by one, with
    one lock, one read of the state and one write of each kind for all of them. Stops at the first
    job that may not start now: that one is left as it is (not held), unless it is the first,
    which goes the single way (an override, a hold or a failure: its decision is the only one).
    Returns the decisions of the admitted jobs (in order), or the first job's refusal.
    `freed_slots`: running slots settled in this transaction with `keep_slots`, passed on here."""
    first = jobs[0]
    if locked is not None and locked.policy.team_id == first.team_id:
        policy, now = locked.policy, locked.now
    else:
        policy, now = _lock_policy(first.team_id), db_now()
    policy.running -= freed_slots
    snap = _snapshot(policy, handler=first.handler, now=now, create=True)
    decisions: list[Decision] = []
    entries: list[Ledger] = []
    reserved = 0
    # (The later jobs come after the first: at least as many held jobs come before each of them.)
    held_before = _held_before(policy, first)
    for job in jobs:
        if job.team_id != first.team_id or job.handler != first.handler:
            break
        reasons, _ = _evaluate(snap, estimate=job.cost_estimate, held_before=held_before)
        if reasons:
            break
        entries.extend(_reserve(snap, job, now=now))
        reserved += job.cost_estimate
        # Counted in memory as it would be in the table: the next job's concurrency, rate and
        # money checks see this one.
        snap.count_start(now)
        policy.running += 1
        decisions.append(Decision(allowed=True, pulse_state=_pulse_state(snap, calls=snap.starts,
                                                                         running=policy.running)))
    if not decisions:
        decision = _admit(policy, first, now=now, freed_slot=False, snap=snap)
        _move_running(policy, -freed_slots)
        return [decision]
    Ledger.objects.bulk_create(entries)
    if reserved:
        Usage.objects.filter(pk__in=[row.pk for row in snap.usage.values()]).update(reserved=F("reserved") + reserved)
    Start.objects.bulk_create([Start(team_id=first.team_id, at=now) for _ in decisions])
    _move_running(policy, len(decisions) - freed_slots)
    return decisions


def _window_of(entry: Ledger) -> tuple[datetime, datetime]:
    """A reserve's window (every reserve has one; the columns are empty on other kinds of row)."""
    if entry.window_start is None or entry.window_end is None:
        raise ValueError(f"ledger row {entry.pk} ({entry.kind}) is of no window")
    return entry.window_start, entry.window_end


def _move_running(policy: BudgetPolicy, delta: int) -> None:
    if delta:
        BudgetPolicy.objects.filter(pk=policy.pk).update(running=Greatest(F("running") + delta, 0))


def budget_hold_check(*, job: AdmittableJob, extra_micros: int = 0, extra_handler_micros: int = 0,
                      cache: dict[str, Snapshot | None] | None = None, held_before: int | None = None
                      ) -> Decision:
    """Advisory, without locks or writes: would the job be admitted now? `extra_*` count jobs
    about to be released ahead of it, so a release does not send more than could run (their
    estimates against the team's limits; `extra_handler_micros`, those of the job's own
    handler, against its handler's cap: another handler's jobs take none of it). A caller
    checking many jobs of one team passes a `cache` (per handler) to read the state once.
    `held_before`: the jobs waiting for a slot before it, counted as admission counts them when
    None (a release pass, going through them in order, counts them itself)."""
    cache = {} if cache is None else cache
    if job.handler not in cache:
        # With no limit of the team's and no cap of the handler's nothing can hold the job: the
        # answer of every submit of an unlimited team, in one statement instead of five.
        policy = (BudgetPolicy.objects.select_related("team").filter(team_id=job.team_id)
                  .annotate(capped=Exists(HandlerCap.objects.filter(team_id=OuterRef("team_id"), handler=job.handler)))
                  .first())
        if policy is not None and _may_hold(policy, capped=policy.capped):
            cache[job.handler] = _snapshot(policy, handler=job.handler, now=db_now(), create=False)
        else:
            cache[job.handler] = None
    snap = cache[job.handler]
    if snap is None:
        return Decision(allowed=True)
    reasons, resume_at = _evaluate(snap, estimate=job.cost_estimate, extra_micros=extra_micros,
                                   extra_handler_micros=extra_handler_micros,
                                   held_before=_held_before(snap.policy, job) if held_before is None else held_before)
    if _money_in(reasons) and Override.objects.filter(
            team_id=job.team_id, expires_at__gt=snap.now, amount__gte=F("spent") + job.cost_estimate + extra_micros,
    ).exists():
        reasons, resume_at = _without_money(reasons)
    return Decision(allowed=not reasons, reasons=reasons, resume_at=resume_at)


def budget_preview(*, job: AdmittableJob) -> list[dict[str, Any]]:
    """Advisory: the reasons the job would be held if it were admitted now."""
    return budget_hold_check(job=job).reasons


def budget_check_submittable(*, team: Team, handler: str, estimate_micros: int) -> bool:
    """Refuse (422) a job whose estimate alone exceeds a limit: it could never run. Returns
    whether any limit could hold the job (False: the team has none and the handler no cap, so
    a preview of its admission has nothing to say)."""
    policy, cap = _policy_and_cap(team.pk, handler)
    if policy is None:
        return False
    over = next(((kind, scope, limit) for kind in KINDS
                 for scope, limit in (("", policy.limit_for(kind)), (handler, cap.limit_for(kind) if cap else None))
                 if limit is not None and estimate_micros > limit), None)
    # An override lets it through every money limit (the rate and the concurrency may still hold it).
    if over is not None and not Override.objects.filter(team=team, expires_at__gt=timezone.now(),
                                                        amount__gte=F("spent") + estimate_micros).exists():
        kind, scope, limit = over
        whose = f"the {KIND_LABEL[kind]} cap of handler {handler}" if scope else f"the team's {KIND_LABEL[kind]} limit"
        reason = (f"The estimate of {money_text(estimate_micros)} is above {whose} of {money_text(limit)}; "
                  f"this job could never run.")
        raise Unprocessable(reason, code="over_budget_limit", fields={"estimate": [reason]})
    return _may_hold(policy, capped=cap is not None)


def _may_hold(policy: BudgetPolicy | None, *, capped: bool) -> bool:
    """Whether any limit could hold a job: one of the team's, or a cap of its handler's."""
    return policy is not None and (not policy.holds_nothing or capped)


@cache
def _policy_and_cap_sql() -> str:
    policy, cap = BudgetPolicy._meta.db_table, HandlerCap._meta.db_table
    selected = f"{sqlbatch.columns(BudgetPolicy, 'p')}, {sqlbatch.columns(HandlerCap, 'c')}"
    return (f"SELECT {selected} FROM {policy} p "  # nosec B608
            f"LEFT JOIN {cap} c ON c.team_id = p.team_id AND c.handler = %s WHERE p.team_id = %s")


def _policy_and_cap(team_id: int, handler: str) -> tuple[BudgetPolicy | None, HandlerCap | None]:
    """The team's policy and the handler's cap, read in one statement (every submit reads them)."""
    with connection.cursor() as cursor:
        cursor.execute(_policy_and_cap_sql(), [handler, team_id])
        row = cursor.fetchone()
    if row is None:
        return None, None
    cap_at = sqlbatch.width(BudgetPolicy)
    return sqlbatch.from_row(BudgetPolicy, row), sqlbatch.from_row(HandlerCap, row, cap_at) if row[cap_at] else None


# --- settle -------------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def budget_settle(*, job: AdmittableJob, actual_micros: int, hand_on_slot: bool = False) -> Locked | None:
    """Charge the actual cost of attempt `job.attempts` in the windows it was admitted in,
    release the rest of its reservation and free its slot. Settling twice changes nothing.
    `hand_on_slot`: the running slot stays counted for the job admitted next in this transaction
    (budget_admit with `freed_slot`), which saves two updates of the team's hot policy row.
    Returns the team's locked policy when the attempt's slot was settled here (None: nothing to
    settle), for an admission in the same transaction."""
    policy = _lock_policy(job.team_id)
    attempt = job.attempts
    # One read of this attempt's ledger: its reservations, a charge (settled already) and an override.
    ledger = list(Ledger.objects.filter(job_id=job.public_id, attempt=attempt, kind__in=[
        Ledger.Kind.RESERVE, Ledger.Kind.CHARGE, Ledger.Kind.OVERRIDE]))
    reserves = [entry for entry in ledger if entry.kind == Ledger.Kind.RESERVE]
    if not reserves:
        return None  # admitted before budgets were kept: nothing was reserved
    if any(entry.kind == Ledger.Kind.CHARGE for entry in ledger):
        return None
    now = db_now()
    actual = max(0, actual_micros)
    estimate = reserves[0].amount
    rows = []
    entries = []
    # Nothing reserved and nothing charged moves no usage row: the rows are not even read.
    moves_money = bool(estimate or actual)
    existing = {
        (u.scope, u.kind, u.window_start): u
        for u in Usage.objects.filter(team_id=job.team_id, scope__in={e.scope for e in reserves},
                                      window_start__in={e.window_start for e in reserves})
    } if moves_money else {}
    for entry in reserves:
        start, end = _window_of(entry)
        row = existing.get((entry.scope, entry.window_kind, start))
        if row is None and moves_money:
            # Rebuilt or pruned since admission: the window's row comes back for the charge.
            row, _ = Usage.objects.get_or_create(
                team_id=job.team_id, scope=entry.scope, kind=entry.window_kind, window_start=start,
                defaults={"window_end": end},
            )
        if row is not None:
            rows.append(row)
        common = dict(team_id=job.team_id, job_id=job.public_id, handler=entry.handler, attempt=attempt,
                      scope=entry.scope, window_kind=entry.window_kind, window_start=entry.window_start,
                      window_end=entry.window_end, at=now)
        entries.append(Ledger(kind=Ledger.Kind.RELEASE, amount=estimate, **common))
        entries.append(Ledger(kind=Ledger.Kind.CHARGE, amount=actual, **common))
    # No savepoint for a duplicate: the caller holds the job's row lock and settles an attempt
    # only while the job still runs it, so no second settle of it can get here (the unique
    # ledger key would fail the whole settle if one did).
    Ledger.objects.bulk_create(entries)
    if moves_money:
        Usage.objects.filter(pk__in=[row.pk for row in rows]).update(
            reserved=F("reserved") - estimate, committed=F("committed") + actual
        )
    if not hand_on_slot:
        BudgetPolicy.objects.filter(pk=policy.pk).update(running=Greatest(F("running") - 1, 0))
    used = next((entry for entry in ledger if entry.kind == Ledger.Kind.OVERRIDE), None)
    if used is not None and used.override_id:
        Override.objects.filter(pk=used.override_id).update(spent=F("spent") + (actual - estimate))
    if actual > estimate:
        event_emit(team=job.team_id, kind="budget.overrun", subject=job.public_id, payload={
            "job": job.public_id, "handler": job.handler, "attempt": attempt,
            "estimate": money_str(estimate), "actual": money_str(actual), "over_by": money_str(actual - estimate),
        })
    if actual:
        # Nothing charged crosses no threshold.
        _fire_alerts(policy, handler=job.handler, row_ids=[row.pk for row in rows], now=now)
    return Locked(policy=policy, now=now)


@transaction.atomic(savepoint=False)
def budget_settle_many(*, settled: list[tuple[AdmittableJob, int]], keep_slots: bool = False
                       ) -> tuple[Locked | None, int]:
    """`budget_settle` for several attempts of one team (each job with the actual cost of its
    current attempt), with one lock, one read of their ledger and one write of each kind.
    `keep_slots`: their running slots stay counted for `budget_admit_many(freed_slots=...)` in
    this transaction. Returns the locked policy (None: nothing settled) and the slots settled."""
    first = settled[0][0]
    if any(job.team_id != first.team_id for job, _ in settled):
        raise ValueError("budget_settle_many settles attempts of one team")
    policy = _lock_policy(first.team_id)
    by_job = {job.public_id: (job, cost) for job, cost in settled}
    ledger: dict[str, list[Ledger]] = {}
    for entry in Ledger.objects.filter(job_id__in=list(by_job), kind__in=[
            Ledger.Kind.RESERVE, Ledger.Kind.CHARGE, Ledger.Kind.OVERRIDE]):
        if entry.attempt == by_job[entry.job_id][0].attempts:
            ledger.setdefault(entry.job_id, []).append(entry)
    # Jobs admitted before budgets were kept (no reservation) and attempts settled already: skipped.
    todo = [(job, cost, [e for e in ledger[job.public_id] if e.kind == Ledger.Kind.RESERVE], ledger[job.public_id])
            for job, cost in settled
            if job.public_id in ledger and not any(e.kind == Ledger.Kind.CHARGE for e in ledger[job.public_id])]
    todo = [item for item in todo if item[2]]
    if not todo:
        return None, 0
    now = db_now()
    moves_money = any(reserves[0].amount or max(0, cost) for _, cost, reserves, _ in todo)
    existing = {
        (u.scope, u.kind, u.window_start): u
        for u in Usage.objects.filter(team_id=first.team_id,
                                      scope__in={e.scope for _, _, reserves, _ in todo for e in reserves},
                                      window_start__in={e.window_start for _, _, reserves, _ in todo for e in reserves})
    } if moves_money else {}
    entries: list[Ledger] = []
    moves: dict[int, list[int]] = {}  # usage row id -> [reserved change, committed change]
    charged_by_handler: dict[str, set[int]] = {}
    for job, cost, reserves, entries_of_job in todo:
        actual = max(0, cost)
        estimate = reserves[0].amount
        for entry in reserves:
            start, end = _window_of(entry)
            row = existing.get((entry.scope, entry.window_kind, start))
            if row is None and (estimate or actual):
                row, _ = Usage.objects.get_or_create(
                    team_id=job.team_id, scope=entry.scope, kind=entry.window_kind, window_start=start,
                    defaults={"window_end": end},
                )
                existing[(entry.scope, entry.window_kind, start)] = row
            if row is not None and (estimate or actual):
                move = moves.setdefault(row.pk, [0, 0])
                move[0] -= estimate
                move[1] += actual
                if actual:
                    charged_by_handler.setdefault(job.handler, set()).add(row.pk)
            common = dict(team_id=job.team_id, job_id=job.public_id, handler=entry.handler, attempt=job.attempts,
                          scope=entry.scope, window_kind=entry.window_kind, window_start=entry.window_start,
                          window_end=entry.window_end, at=now)
            entries.append(Ledger(kind=Ledger.Kind.RELEASE, amount=estimate, **common))
            entries.append(Ledger(kind=Ledger.Kind.CHARGE, amount=actual, **common))
        used = next((entry for entry in entries_of_job if entry.kind == Ledger.Kind.OVERRIDE), None)
        if used is not None and used.override_id:
            Override.objects.filter(pk=used.override_id).update(spent=F("spent") + (actual - estimate))
        if actual > estimate:
            event_emit(team=job.team_id, kind="budget.overrun", subject=job.public_id, payload={
                "job": job.public_id, "handler": job.handler, "attempt": job.attempts,
                "estimate": money_str(estimate), "actual": money_str(actual), "over_by": money_str(actual - estimate),
            })
    Ledger.objects.bulk_create(entries)
    # Rows moved by the same amounts (every window of a job, jobs of one estimate) in one UPDATE.
    same: dict[tuple[int, int], list[int]] = {}
    for pk, (reserved, committed) in moves.items():
        same.setdefault((reserved, committed), []).append(pk)
    for (reserved, committed), pks in same.items():
        Usage.objects.filter(pk__in=pks).update(reserved=F("reserved") + reserved, committed=F("committed") + committed)
    if not keep_slots:
        _move_running(policy, -len(todo))
    for handler, row_ids in charged_by_handler.items():
        _fire_alerts(policy, handler=handler, row_ids=sorted(row_ids), now=now)
    return Locked(policy=policy, now=now), len(todo)


def _fire_alerts(policy: BudgetPolicy, *, handler: str, row_ids: list[int], now: datetime) -> None:
    """Each threshold fires once per team, scope, window and limit: the unique Alert row decides,
    and settles of one team are serialized by the policy lock, so concurrent crossings fire once.
    A changed limit re-arms the thresholds against it."""
    cap = HandlerCap.objects.filter(team_id=policy.team_id, handler=handler).first()
    thresholds = sorted(int(t) for t in policy.alert_thresholds or [])
    for row in Usage.objects.filter(pk__in=row_ids):
        limit = policy.limit_for(row.kind) if row.scope == "" else (cap.limit_for(row.kind) if cap else None)
        if not limit:
            continue
        for threshold in thresholds:
            if row.committed * 100 < limit * threshold:
                break
            alert, created = Alert.objects.get_or_create(
                team_id=policy.team_id, scope=row.scope, window_kind=row.kind, window_start=row.window_start,
                limit=limit, threshold=threshold, defaults={"window_end": row.window_end, "spent": row.committed, "at": now},
            )
            if created:
                event_emit(team=policy.team_id, kind="budget.alert", subject=row.scope or "team", payload=alert_payload(alert))


def _fire_alerts_of_current_windows(policy: BudgetPolicy, *, now: datetime) -> None:
    """After the limits or thresholds change: what is spent already may have crossed a threshold
    of the new ones (a daily limit lowered to under today's spend alerts now, not at the next charge)."""
    by_scope: dict[str, list[int]] = {}
    for pk, scope in Usage.objects.filter(team_id=policy.team_id, window_end__gt=now, committed__gt=0
                                          ).values_list("pk", "scope"):
        by_scope.setdefault(scope, []).append(pk)
    for scope, row_ids in by_scope.items():
        _fire_alerts(policy, handler=scope, row_ids=sorted(row_ids), now=now)


def alert_whose(alert: Alert) -> str:
    return f"Handler {alert.scope}" if alert.scope else "The team"


def alert_payload(alert: Alert) -> dict[str, Any]:
    whose = alert_whose(alert)
    return {
        "scope": alert.scope, "window": alert.window_kind, "threshold": alert.threshold,
        "spent": money_str(alert.spent), "limit": money_str(alert.limit),
        "window_end": alert.window_end.isoformat(),
        "message": (f"{whose} has spent {money_text(alert.spent)} of its {KIND_LABEL[alert.window_kind]} limit of "
                    f"{money_text(alert.limit)} ({alert.threshold} % reached)."),
    }


# --- repair -------------------------------------------------------------------------------------


@transaction.atomic
def budget_repair(*, team_id: int) -> list[dict[str, Any]]:
    """Rebuild the current windows' usage and the running count from the ledger; fix and report
    any drift (as a budget.drift event). Returns the drifts found."""
    policy = _lock_policy(team_id)
    now = db_now()
    windows = windows_at(now, zone=policy_zone(policy), week_start=policy.week_start)
    current: dict[tuple[str, datetime | None], Window] = {(w.kind, w.start): w for w in windows}
    truth: dict[tuple[str, str, datetime], list[int]] = {}
    sums = (
        Ledger.objects.filter(team_id=team_id, window_start__in=[w.start for w in windows])
        .values("scope", "window_kind", "window_start", "kind").annotate(total=Sum("amount")).order_by()
    )
    for item in sums:
        window = current.get((item["window_kind"], item["window_start"]))
        if window is None:
            continue
        key = (item["scope"], window.kind, window.start)
        committed_reserved = truth.setdefault(key, [0, 0])
        if item["kind"] == Ledger.Kind.CHARGE:
            committed_reserved[0] += item["total"]
        elif item["kind"] == Ledger.Kind.RESERVE:
            committed_reserved[1] += item["total"]
        elif item["kind"] == Ledger.Kind.RELEASE:
            committed_reserved[1] -= item["total"]
    drifts: list[dict[str, Any]] = []
    rows = {(u.scope, u.kind, u.window_start): u
            for u in Usage.objects.filter(team_id=team_id, window_start__in=[w.start for w in windows])
            if (u.kind, u.window_start) in current}
    # In one order in every process (a set of keys holding strings iterates in the hash seed's):
    # the team's windows before the handlers', each day, week, month.
    rank = {window.kind: n for n, window in enumerate(windows)}
    for key in sorted(set(truth) | set(rows), key=lambda k: (k[0], rank[k[1]])):
        committed, reserved = truth.get(key, [0, 0])
        row = rows.get(key)
        if row is not None and (row.committed, row.reserved) == (committed, reserved):
            continue
        if row is None and committed == reserved == 0:
            continue
        scope, kind, start = key
        drifts.append({"scope": scope, "window": kind, "window_start": start.isoformat(),
                       "committed_was": money_str(row.committed if row else 0), "committed": money_str(committed),
                       "reserved_was": money_str(row.reserved if row else 0), "reserved": money_str(reserved)})
        Usage.objects.update_or_create(team_id=team_id, scope=scope, kind=kind, window_start=start,
                                       defaults={"committed": committed, "reserved": reserved,
                                                 "window_end": current[(kind, start)].end})
    open_count = _open_admissions(team_id, now)
    if open_count != policy.running:
        drifts.append({"running_was": policy.running, "running": open_count})
        BudgetPolicy.objects.filter(pk=policy.pk).update(running=open_count)
    if drifts:
        event_emit(team=team_id, kind="budget.drift", subject="usage", payload={"drifts": drifts})
    return drifts


def _open_admissions(team_id: int, now: datetime) -> int:
    """Admissions not yet settled: team-scope daily reserve rows without their release. Only
    recent ones can still be open (a running job settles or is rescued within its timeout and
    lease), so the ledger's history is never scanned; but a daemon has no timeout and runs for
    days: the attempts still running that began before then are counted by their own rows."""
    from jobs.models import Job  # budgets must not import jobs at module level

    horizon = now - timedelta(seconds=settings.PULSE_MAX_JOB_TIMEOUT + 2 * settings.PULSE_LEASE_SECONDS + 3600)
    released = Ledger.objects.filter(job_id=OuterRef("job_id"), attempt=OuterRef("attempt"),
                                     kind=Ledger.Kind.RELEASE, scope="", window_kind="day")
    reserved = Ledger.objects.filter(team_id=team_id, kind=Ledger.Kind.RESERVE, scope="", window_kind="day")
    # Served by ledger_team_kind_at; the Exists by the unique (job_id, attempt, kind, ...) key.
    recent = reserved.filter(at__gte=horizon).exclude(Exists(released)).count()
    # The team's running jobs (job_team_status_id), their older reserve rows by the ledger's
    # (job_id, …) key: a handful at most, whatever the history.
    running = dict(Job.objects.filter(team_id=team_id, status=Job.Status.RUNNING).values_list("public_id", "attempts"))
    if not running:
        return recent
    older = (reserved.filter(at__lt=horizon, job_id__in=list(running)).exclude(Exists(released))
             .values_list("job_id", "attempt"))
    return recent + sum(1 for job_id, attempt in older if running[job_id] == attempt)


# --- policy and overrides -----------------------------------------------------------------------

POLICY_MONEY_FIELDS = ("daily_limit", "weekly_limit", "monthly_limit")
CAP_FIELDS = ("daily", "weekly", "monthly")


def _optional_money(value: object, *, field: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    return to_micros(parse_money(value, field=field))


def _optional_count(value: object, *, field: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
        raise ValidationError.for_field(field, "A whole number from 1 to 1000000, or empty for no limit.")
    return value


def _thresholds(value: object) -> list[int]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise ValidationError.for_field("alert_thresholds", "A list of percentages, e.g. [80, 100].")
    out = set()
    for item in value:
        if isinstance(item, str) and item.isdigit():
            item = int(item)
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= 100:
            raise ValidationError.for_field("alert_thresholds", "Each threshold is a whole percentage from 1 to 100.")
        out.add(item)
    if len(out) > 10:
        raise ValidationError.for_field("alert_thresholds", "At most 10 thresholds.")
    return sorted(out)


def cap_as_dict(cap: HandlerCap) -> dict[str, str | None]:
    """A handler cap's limits as the API gives them: {"daily": "1.5", "weekly": None, "monthly": "20"}."""
    return {name: money_str(cap.limit_for(kind)) for name, kind in zip(CAP_FIELDS, KINDS, strict=True)}


def policy_as_dict(policy: BudgetPolicy) -> dict[str, Any]:
    caps = {cap.handler: cap_as_dict(cap) for cap in HandlerCap.objects.filter(team_id=policy.team_id)}
    return {
        "daily_limit": money_str(policy.daily_limit), "weekly_limit": money_str(policy.weekly_limit),
        "monthly_limit": money_str(policy.monthly_limit), "calls_per_minute": policy.calls_per_minute,
        "max_concurrent": policy.max_concurrent, "time_zone": policy.time_zone, "week_start": policy.week_start,
        "alert_thresholds": list(policy.alert_thresholds), "handler_caps": caps,
        "over_budget": policy.over_budget,
    }


def _parse_caps(value: object) -> dict[str, dict[str, int | None]]:
    """{handler: {daily, weekly, monthly}}, each refusal named by its path (handler_caps.<handler>.<window>)."""
    from jobs.handlers.registry import get_public_handler  # budgets must not import jobs at module level

    if not isinstance(value, dict):
        raise ValidationError.for_field("handler_caps", "An object of handler name to {daily, weekly, monthly}.")
    errors = FieldErrors()
    caps: dict[str, dict[str, int | None]] = {}
    for handler, limits in value.items():
        field = f"handler_caps.{handler}"
        try:
            get_public_handler(str(handler), field=field)
        except ValidationError as exc:
            errors.add(exc)
            continue
        if not isinstance(limits, dict):
            errors.add_reason(field, "An object of daily, weekly and monthly, each an amount or null.")
            continue
        for name in sorted(set(limits) - set(CAP_FIELDS)):
            errors.add_reason(f"{field}.{name}", f"Not a window: {', '.join(CAP_FIELDS)}.")
        cap: dict[str, int | None] = {}
        for name in CAP_FIELDS:
            with errors.collect():
                cap[name] = _optional_money(limits.get(name), field=f"{field}.{name}")
        caps[str(handler)] = cap
    errors.raise_any()
    return caps


def limits_overruled(policy: BudgetPolicy) -> list[str]:
    """Limits that can never be the one reached: a day's above the week's or month's, a week's
    above the month's. Allowed (a team may mean it for a while), but said when saved."""
    limits = [("daily", policy.daily_limit), ("weekly", policy.weekly_limit), ("monthly", policy.monthly_limit)]
    notes = []
    for at, (shorter, low) in enumerate(limits):
        for longer, high in limits[at + 1:]:
            if low is not None and high is not None and low > high:
                notes.append(f"The {shorter} limit ({money_text(low)}) is above the {longer} limit ({money_text(high)}): "
                             f"the {longer} limit is reached first.")
    return notes


# Spend is kept per window (budgets.models.Usage); windows with new bounds start from nothing.
WINDOWS_MOVED = ("The day, week and month now begin at the new bounds, and start from what is spent in them from "
                 "now on: what was spent before stays in the windows it was charged to (and in the history). "
                 "Lower a limit for the rest of the day if that matters.")


def policy_bounds(policy: BudgetPolicy, team: Team) -> tuple[str, int]:
    """Where the policy's day, week and month begin: its time zone and week start."""
    return str(policy_zone(policy, team)), policy.week_start


def team_bounds(team: Team) -> tuple[str, int]:
    """`policy_bounds` of the team's policy as it stands, read without making one (a refused
    change must leave nothing written): a team with none has the defaults' bounds."""
    policy = BudgetPolicy.objects.filter(team=team).first() or BudgetPolicy(team=team)
    return policy_bounds(policy, team)


def budget_policy_update_noted(*, team: Team, changes: dict[str, Any], by: Membership | None
                               ) -> tuple[BudgetPolicy, list[str]]:
    """`budget_policy_update`, and what the saved policy should be told beside "saved" (the
    page's warnings, the API's `notes`): one rule for both."""
    bounds_before = team_bounds(team)
    policy = budget_policy_update(team=team, changes=changes, by=by)
    return policy, policy_update_notes(policy, team, bounds_before)


def team_update_noted(*, team: Team, changes: dict[str, Any], by: Membership | None) -> tuple[Team, list[str]]:
    """`team_update`, and what the team's owner should be told beside "saved" (the team page's
    warnings, the team API's `notes`): a new team zone that moves the budget's windows (a budget
    without a zone of its own)."""
    from pulse_site.teams.services import team_update

    bounds_before = team_bounds(team)
    team = team_update(team=team, changes=changes, by=by)
    return team, [WINDOWS_MOVED] if team_bounds(team) != bounds_before else []


def policy_update_notes(policy: BudgetPolicy, team: Team, bounds_before: tuple[str, int]) -> list[str]:
    """What a saved policy should be told beside "saved" (the page's warnings, the API's `notes`):
    limits that can never be reached, windows that start again."""
    notes = limits_overruled(policy)
    if policy_bounds(policy, team) != bounds_before:
        notes.append(WINDOWS_MOVED)
    return notes


def _require_manager(by: Membership | None) -> None:
    if by is not None and not by.can_manage:
        raise PermissionDenied("Only owners and admins change the budget.")


def budget_policy_validate(*, changes: dict[str, Any]
                           ) -> tuple[dict[str, Any], dict[str, dict[str, int | None]] | None]:
    """The cleaned policy fields of `changes` and its handler caps (None: not given), for forms
    that check before saving (the admin's); ValidationError naming each bad field. The update
    runs the same checks itself."""
    known = set(POLICY_MONEY_FIELDS) | {"calls_per_minute", "max_concurrent", "time_zone", "week_start",
                                        "alert_thresholds", "handler_caps", "over_budget"}
    values: dict[str, Any] = {}
    errors = FieldErrors()
    for name in sorted(set(changes) - known):
        errors.add_reason(name, "Not a budget setting.")
    for name in POLICY_MONEY_FIELDS:
        if name in changes:
            with errors.collect():
                values[name] = _optional_money(changes[name], field=name)
    for name in ("calls_per_minute", "max_concurrent"):
        if name in changes:
            with errors.collect():
                values[name] = _optional_count(changes[name], field=name)
    if "time_zone" in changes:
        zone = changes["time_zone"] or ""
        if not isinstance(zone, str) or (zone and zone not in zone_names()):
            errors.add_reason("time_zone", "An IANA time zone name (e.g. Europe/Berlin), or empty for the team's.")
        values["time_zone"] = zone
    if "week_start" in changes:
        day = changes["week_start"]
        if isinstance(day, str) and day.isdigit():
            day = int(day)
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= 6:
            errors.add_reason("week_start", "0 (Monday) to 6 (Sunday).")
        values["week_start"] = day
    if "alert_thresholds" in changes:
        with errors.collect():
            values["alert_thresholds"] = _thresholds(changes["alert_thresholds"])
    if "over_budget" in changes:
        if changes["over_budget"] not in BudgetPolicy.OverBudget.values:
            errors.add_reason("over_budget", "hold (jobs wait for the budget) or fail (they end with budget_exceeded).")
        values["over_budget"] = changes["over_budget"]
    caps = None
    if "handler_caps" in changes:
        with errors.collect():
            caps = _parse_caps(changes["handler_caps"])
    errors.raise_any()
    return values, caps


@transaction.atomic
def budget_policy_update(*, team: Team, changes: dict[str, Any], by: Membership | None,
                         user: User | None = None) -> BudgetPolicy:
    """Change some of the policy's fields (absent keys stay); record who changed what. `by` is
    the member acting (None for operators and admin, who are trusted)."""
    _require_manager(by)
    values, caps = budget_policy_validate(changes=changes)
    policy = _lock_policy(team.pk)
    before = policy_as_dict(policy)
    actor = by.user if by is not None else user
    for name, value in values.items():
        setattr(policy, name, value)
    policy.updated_by = actor
    policy.updated_at = timezone.now()
    policy.save(update_fields=[*values, "updated_by", "updated_at"])
    if caps is not None:
        for handler, limits in caps.items():
            if all(v is None for v in limits.values()):
                HandlerCap.objects.filter(team=team, handler=handler).delete()
            else:
                HandlerCap.objects.update_or_create(team=team, handler=handler, defaults={
                    "daily_limit": limits["daily"], "weekly_limit": limits["weekly"], "monthly_limit": limits["monthly"]})
    after = policy_as_dict(policy)
    if after != before:
        label = _actor_label(by, user)
        PolicyChange.objects.create(team=team, by=actor, by_label=label, before=before, after=after)
        event_emit(team=team, kind="budget.policy", subject=team.public_id,
                   payload={"by": label, "before": before, "after": after})
        _fire_alerts_of_current_windows(policy, now=db_now())
        _release_on_commit(team.pk)
    return policy


def _actor_label(by: Membership | None, user: User | None) -> str:
    """Who changed the budget, as the team's events say it: a member by username, staff in the
    admin as "admin <username>" (as its other actions are), a command as "operator"."""
    if by is not None:
        return by.user.get_username()
    return f"admin {user.get_username()}" if user is not None else "operator"


def budget_override_validate(*, amount: object, expires_at: datetime | None, reason: str
                             ) -> tuple[int, datetime, str]:
    """An override's amount in micro-units, its expiry and its reason, cleaned, for forms that check before
    saving (the admin's); ValidationError naming the bad field. The create runs it itself."""
    micros = to_micros(parse_money(amount, field="amount"))
    if micros <= 0:
        raise ValidationError.for_field("amount", "The override amount must be above 0.")
    now = timezone.now()
    if expires_at is None or expires_at <= now:
        raise ValidationError.for_field("expires_at", "The expiry must be in the future.")
    if expires_at > now + timedelta(days=MAX_OVERRIDE_DAYS):
        raise ValidationError.for_field("expires_at", f"At most {MAX_OVERRIDE_DAYS} days ahead.")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError.for_field("reason", "Say why the budget is overridden.")
    longest = Override._meta.get_field("reason").max_length or 0
    if len(reason) > longest:
        raise ValidationError.for_field("reason", f"At most {longest} characters (this is {len(reason)}).")
    return micros, expires_at, reason


def budget_override_refusal(*, by: Membership | None) -> PermissionDenied | None:
    """Why budget_override_create and budget_override_end would refuse `by`, or None when they
    would let them (the budget page offers its override form and End now by this, and says these
    words instead): overrides are for owners, and staff (`by=None`); an admin changes the limits
    but does not lift them."""
    if by is not None and by.role != Membership.Role.OWNER:
        return PermissionDenied("Only owners (or staff) can override the budget or end an override.")
    return None


@transaction.atomic
def budget_override_create(*, team: Team, amount: object, expires_at: datetime | None, reason: str,
                           by: Membership | None, user: User | None = None) -> Override:
    """Let jobs through money limits (not rate or concurrency) up to `amount` until `expires_at`.
    Owners only (or staff, `by=None`: budget_override_refusal); the spend still counts against the
    windows."""
    if (refusal := budget_override_refusal(by=by)) is not None:
        raise refusal
    micros, expires_at, reason = budget_override_validate(amount=amount, expires_at=expires_at, reason=reason)
    actor = by.user if by is not None else user
    override = Override.objects.create(team=team, amount=micros, expires_at=expires_at, reason=reason,
                                       created_by=actor, created_by_name=actor.get_username() if actor else "")
    event_emit(team=team, kind="budget.override", subject=override.public_id, payload={
        "amount": money_str(micros), "expires_at": expires_at.isoformat(), "reason": override.reason,
        "by": _actor_label(by, user)})
    _release_on_commit(team.pk)
    return override


def _release_on_commit(team_id: int) -> None:
    def release() -> None:
        from jobs.services import job_release_held  # jobs depends on budgets, not the other way

        job_release_held(team_id=team_id, after_change=True)

    transaction.on_commit(release)


def budget_override_end_refusal(override: Override, *, now: datetime | None = None) -> Conflict | None:
    """Why budget_override_end would refuse `override` (as of `now`), or None when it would end it
    (the budget page offers "End now" by this)."""
    if override.expires_at <= (now or timezone.now()):
        return Conflict("This override has already ended.", code="override_ended")
    return None


@transaction.atomic
def budget_override_end(*, override: Override, by: Membership | None, user: User | None = None
                        ) -> Override:
    """End an override now (owners or staff: budget_override_refusal); what it already let through
    stays counted. One that has ended (expired, or ended by someone else meanwhile) is refused: 409
    `override_ended`."""
    if (denied := budget_override_refusal(by=by)) is not None:
        raise denied
    # Locked: of two ends at once, the second reads the first's end and is refused.
    override = Override.objects.select_for_update().get(pk=override.pk)
    now = timezone.now()
    refusal = budget_override_end_refusal(override, now=now)
    if refusal is not None:
        raise refusal
    override.expires_at = now
    override.save(update_fields=["expires_at"])
    event_emit(team=override.team_id, kind="budget.override_ended", subject=override.public_id,
               payload={"by": _actor_label(by, user)})
    return override
