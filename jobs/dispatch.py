"""Handing jobs to django-q2, fairly between teams.

The backlog waits in Pulse's jobs table, where it can still be held, reordered or cancelled.
django-q2 only ever holds a bounded number of jobs in flight (`dispatch_capacity`), so a
team that submits 10,000 jobs cannot push another team's one job behind its backlog: each free
slot goes to the team with the fewest jobs in flight, then by priority, then by age.
"""

from __future__ import annotations

import heapq
import logging
import os
import time
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min, Q
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.tasks import async_task

from jobs.beats import live_after
from jobs.models import Job, WorkerBeat
from pulse_site.locks import transaction_lock, try_transaction_lock

log = logging.getLogger("pulse.jobs")
Status = Job.Status
ENTRY_POINT = "jobs.tasks.run_job"
# Seconds django-q2 waits past the handler's own timeout before killing the worker: the
# handler's timeout is enforced inside run_job, django-q2's is only the backstop.
HARD_TIMEOUT_MARGIN = 30


IN_FLIGHT = Q(status=Status.RUNNING) | Q(status=Status.QUEUED, dispatched_at__isnull=False)


# Seconds a process trusts its count of the live workers before reading their beats again: the
# count is read on every submit's and every settle's way, and workers come and go in seconds.
CAPACITY_SECONDS = 5.0
_capacity: dict[str, tuple[float, int]] = {}


def dispatch_capacity() -> int:
    """Jobs django-q2 may hold at once across all clusters: PULSE_DISPATCH_CAPACITY when set,
    else twice the workers alive on every machine (their beats), and at least twice
    PULSE_WORKERS (one cluster's, before any worker has beaten): with a fixed number, the
    workers of a second and third cluster sat idle."""
    if settings.PULSE_DISPATCH_CAPACITY is not None:
        return int(settings.PULSE_DISPATCH_CAPACITY)
    now = time.monotonic()
    kept = _capacity.get("workers")
    if kept is None or kept[0] < now:
        kept = (now + CAPACITY_SECONDS, WorkerBeat.objects.filter(seen_at__gte=live_after()).count())
        _capacity["workers"] = kept
    return 2 * max(kept[1], settings.PULSE_WORKERS)


def in_flight_by_team() -> dict[int, int]:
    rows = (
        Job.objects.filter(IN_FLIGHT)
        .values("team_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["team_id"]: row["n"] for row in rows}


def _ready(now):
    return Job.objects.filter(status=Status.QUEUED, dispatched_at__isnull=True).filter(
        Q(run_after__isnull=True) | Q(run_after__lte=now)
    ).exclude(start_by__lt=now, attempts=0)  # a staged run that missed its slot: its schedule decides it


def backlog_ahead(job: Job, now: datetime, *, cap: int) -> int:
    """How many of its team's ready jobs the dispatcher hands over before `job`, a job of the
    backlog (its order within a team: priority, then age; one read of job_backlog), up to `cap`."""
    before = Q(priority__gt=job.priority) | Q(priority=job.priority, id__lt=job.pk)
    return _ready(now).filter(team_id=job.team_id).filter(before).order_by()[:cap].count()


def next_start_in(now: datetime, *, within: float) -> float | None:
    """Seconds until the first job waiting for its start time (a retry's backoff, a `run_after`)
    may be handed over, when that comes within `within` seconds; else None. One read of the
    job_waiting_start index."""
    first = Job.objects.filter(status=Status.QUEUED, dispatched_at__isnull=True, run_after__gt=now,
                               run_after__lte=now + timedelta(seconds=within)).aggregate(first=Min("run_after"))["first"]
    return None if first is None else (first - now).total_seconds()


def _choose(now, room: int, in_flight: dict[int, int]) -> list[tuple[int, str, int]]:
    ready = _ready(now)
    # Fair share: the team with the fewest jobs in flight gets the next slot; ties go to the team
    # waiting longest (its oldest ready job). `room` slots reach at most `room` teams, and only the
    # first `room` teams in that order can get one (a later team is reached only once each team
    # before it has had a slot), so only their heads are read: 1 + room queries, not one per team.
    oldest = dict(ready.values("team_id").annotate(oldest=Min("id")).values_list("team_id", "oldest").order_by())
    candidates = sorted(oldest, key=lambda team_id: (in_flight.get(team_id, 0), oldest[team_id]))[:room]
    heads: dict[int, list[tuple[int, str, int]]] = {}
    for team_id in candidates:
        heads[team_id] = list(
            ready.filter(team_id=team_id).order_by("-priority", "id").values_list("pk", "public_id", "timeout_seconds")[
                :room
            ]
        )
    heap = [(in_flight.get(t, 0), oldest[t], t) for t, rows in heads.items() if rows]
    heapq.heapify(heap)
    chosen: list[tuple[int, str, int]] = []
    while heap and len(chosen) < room:
        count, _, team_id = heapq.heappop(heap)
        rows = heads[team_id]
        chosen.append(rows.pop(0))
        if rows:
            heapq.heappush(heap, (count + 1, oldest[team_id], team_id))
    return chosen


def dispatch() -> int:
    """Hand over as many ready jobs as there is room for; returns how many."""
    now = timezone.now()
    # Nothing waits (the usual case after a settle, or a tick, once submits hand their own jobs
    # over): no transaction and no lock. A job that enters the backlog after this read is
    # dispatched by what put it there (a submit or a release dispatches after its commit) or by
    # the ticker's next dispatch, as when it came in just after a dispatch's choice.
    if not _ready(now).exists():
        return 0
    with transaction.atomic():
        # One dispatcher at a time, and a waiting one rather than one that gives up: a settle that
        # found the lock taken and handed nothing over would leave its freed slot empty until the
        # next tick, because the dispatcher holding the lock counted that slot as still busy.
        transaction_lock("pulse.dispatch")
        in_flight = in_flight_by_team()
        room = dispatch_capacity() - sum(in_flight.values())
        if room <= 0:
            return 0
        chosen = _choose(now, room, in_flight)
        if not chosen:
            return 0
        Job.objects.filter(pk__in=[pk for pk, _, _ in chosen], status=Status.QUEUED,
                           dispatched_at__isnull=True).update(dispatched_at=now, start_by=None)
        transaction.on_commit(lambda: enqueue([(public_id, timeout) for _, public_id, timeout in chosen]))
    return len(chosen)


def submit_lock(public_id: str) -> str:
    """The lock a submit that hands its job over holds until the job is committed: the job may be
    sent before that (jobs.services.job_submit), and a worker's claim takes this lock first."""
    return f"pulse.submit:{public_id}"


def hand_over_at_submit(job: Job, now: datetime) -> bool:
    """The submit's fast path: mark the unsaved `job` handed over (True; the caller saves and
    enqueues it) when `dispatch` would hand it over at once anyway: there is room in flight and
    no other job waits, so the fair choice is this job. False: the caller dispatches after the
    commit as usual. Called in the submit's own transaction, which is then the outermost one: the
    dispatch lock it takes is held until that commit, so that a dispatcher counts this job in
    flight, and no submit or dispatch can fill the same slot; the job's submit lock is held with
    it, so the caller may enqueue the job before it commits."""
    if job.run_after is not None and job.run_after > now:
        return False
    # Never wait: a submit that finds the dispatcher busy leaves the choice to the dispatch.
    if not try_transaction_lock("pulse.dispatch", then=submit_lock(job.public_id)):
        return False
    in_flight, waiting = _in_flight_and_waiting(now)
    if in_flight >= dispatch_capacity() or waiting:
        return False
    job.dispatched_at = now
    return True


@cache
def _in_flight_and_waiting_sql() -> str:
    table = connection.ops.quote_name(Job._meta.db_table)
    # IN_FLIGHT and _ready(now) above, written out: the submit's fast path is on every job's way
    # to its start, and the ORM took 2.5 ms to compile this statement, which runs in 0.3 ms.
    # (tests/jobs/test_submit_handover.py holds the two to the same answers.)
    return (f"SELECT (SELECT COUNT(*) FROM {table} "  # nosec B608
            "WHERE status = %s OR (status = %s AND dispatched_at IS NOT NULL)), "
            f"EXISTS (SELECT 1 FROM {table} WHERE status = %s AND dispatched_at IS NULL "
            "AND (run_after IS NULL OR run_after <= %s) AND (start_by IS NULL OR start_by >= %s OR attempts > 0))")


def _in_flight_and_waiting(now: datetime) -> tuple[int, bool]:
    """How many jobs are in flight, and whether any job is ready in the backlog: one statement."""
    with connection.cursor() as cursor:
        at = connection.ops.adapt_datetimefield_value(now)
        cursor.execute(_in_flight_and_waiting_sql(), [Status.RUNNING, Status.QUEUED, Status.QUEUED, at, at])
        in_flight, waiting = cursor.fetchone()
    return in_flight, bool(waiting)


def next_for_chain(*, now, max_timeout: int, limit: int = 1) -> list[Job]:
    """The jobs a dispatch would hand over next (up to `limit`, all of one team), locked for a
    worker that just settled one to start at once (jobs.runner); empty if the backlog is, or the
    first does not fit in `max_timeout` seconds (a daemon never does; the list stops before the
    first job that does not fit). The team is the one with the fewest jobs in flight (ties: the
    one waiting longest), then its jobs by priority and age, as in `dispatch`."""
    ready = _ready(now)
    teams = list(ready.values("team_id").annotate(oldest=Min("id")).values_list("team_id", "oldest").order_by())
    if not teams:
        return []
    in_flight = in_flight_by_team() if len(teams) > 1 else {}
    team_id = min(teams, key=lambda row: (in_flight.get(row[0], 0), row[1]))[0]
    # SKIP LOCKED: the workers settling at the same moment all want this team's head; each
    # takes the next one nobody holds instead of waiting for (and then losing) the same row.
    jobs = list(ready.filter(team_id=team_id).order_by("-priority", "id")
                .select_for_update(skip_locked=True, of=("self",))[:limit])
    fitting: list[Job] = []
    for job in jobs:
        if not 0 < job.timeout_seconds <= max_timeout:
            break
        fitting.append(job)
    return fitting


_broker: tuple[tuple[int, str], Any] | None = None


def process_broker() -> Any:
    """One django-q2 broker per process and queue: async_task (and Stat.get_all) make a new one (a
    new Redis connection, ~10 ms of CPU in redis-py's set-up, or ORM broker lookups) on every call
    unless given one. Keyed by pid (workers are forked) and by the queue's name, which the broker
    fixes when made: one made for another queue would send every message where no cluster reads."""
    global _broker
    from django_q.conf import Conf

    key = (os.getpid(), str(Conf.CLUSTER_NAME))  # the queue, as get_broker() names it
    if _broker is None or _broker[0] != key:
        _broker = (key, get_broker())
    return _broker[1]


def enqueue(jobs: list[tuple[str, int]]) -> None:
    for public_id, timeout in jobs:
        try:
            # timeout 0 is a daemon's: -1 tells django-q2 never to kill it.
            async_task(ENTRY_POINT, public_id, timeout=timeout + HARD_TIMEOUT_MARGIN if timeout else -1,
                       task_name=public_id, ack_failure=True, broker=process_broker())
        except Exception:
            # The job stays marked as dispatched; the redispatch step hands it over again.
            log.exception("could not enqueue %s", public_id)


def redispatch_stale() -> int:
    """Jobs handed over long ago but never started (a lost broker message) go back to the backlog."""
    cutoff = timezone.now() - timedelta(seconds=settings.PULSE_REDISPATCH_SECONDS)
    return Job.objects.filter(status=Status.QUEUED, dispatched_at__lt=cutoff).update(dispatched_at=None)
