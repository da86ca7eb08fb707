"""The measurements, each run in a fresh driver process against the bench database.

Every function takes its size parameters and returns a dict of numbers; the harness repeats
them and aggregates. Timings are read from the database's own timestamps where they exist
(Job.started_at/completed_at, django-q2's Task.started/stopped), so polling adds no error.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from collections.abc import Callable
from typing import Any

from django.db import connection

from bench.procs import running, wait_for

KEEP_TABLES = {"django_migrations", "django_content_type", "auth_permission"}


def reset_database() -> None:
    """Empty every table (RESTART IDENTITY) so each repetition starts from the same state."""
    tables = [t for t in connection.introspection.table_names() if t not in KEEP_TABLES]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
    from django.core.cache import cache

    cache.clear()


def _team(slug: str = "bench"):
    from pulse_site.teams.services import team_create

    return team_create(name=f"Bench {slug}", slug=slug)


# Pulse as deployed: a worker cluster and a ticker. The ticker's dispatch step (every second) also
# refills a slot whose settle-time dispatch found the dispatch lock taken by the other worker.
PULSE_PROCESSES = [(["qcluster"], "pulse-cluster"), (["pulse_ticker"], "pulse-ticker")]


def _cluster_env() -> dict[str, str]:
    import os

    return dict(os.environ)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def drain_timeout(jobs: int) -> float:
    # Generous: on a machine shared with other work (the load average at times above 20 on two
    # cores) both sides drain at a few jobs a second, and a number, however slow, beats a timeout.
    return 120 + jobs


# --- throughput --------------------------------------------------------------------------------


def pulse_throughput(*, jobs: int) -> dict[str, Any]:
    """Submit `jobs` pulse.noop through job_submit before the cluster starts (the dispatcher hands
    the first PULSE_DISPATCH_CAPACITY to the broker, every settle the next), then drain them."""
    from django.db.models import Max, Min

    from jobs.models import Job
    from jobs.services import job_submit

    reset_database()
    team = _team()
    for _ in range(jobs):
        job_submit(team=team, handler="pulse.noop", payload={}, source="api")
    done = Job.objects.filter(team=team, status=Job.Status.COMPLETED)
    with running(PULSE_PROCESSES, _cluster_env()):
        wait_for(lambda: done.count() == jobs, timeout=drain_timeout(jobs), every=0.2, what="pulse drain")
    span = done.aggregate(first=Min("started_at"), last=Max("completed_at"))
    seconds = (span["last"] - span["first"]).total_seconds()
    return {"seconds": seconds, "jobs_per_s": jobs / seconds}


def plain_throughput(*, jobs: int) -> dict[str, Any]:
    """Enqueue `jobs` bench.tasks.noop with async_task before the cluster starts, then drain them.
    The drain starts when the queue first shrinks and ends when the last results are saved
    (observed every 10 ms)."""
    from django_q.brokers import get_broker
    from django_q.models import Task
    from django_q.tasks import async_task

    reset_database()
    broker = get_broker()
    broker.purge_queue()
    ids = [async_task("bench.tasks.noop") for _ in range(jobs)]
    tail = ids[-4:]
    with running([(["qcluster"], "plain-cluster")], _cluster_env()):
        wait_for(lambda: broker.queue_size() < jobs or Task.objects.exists(), timeout=60, every=0.005,
                 what="plain cluster start")
        first = time.time()
        # Done when the last enqueued tasks' results are saved (the monitor saves in arrival
        # order; save_limit keeps the newest 250, so earlier rows may be gone by then).
        wait_for(lambda: Task.objects.filter(id__in=tail).count() == len(tail), timeout=drain_timeout(jobs), every=0.01,
                 what="plain drain")
        seconds = time.time() - first
    return {"seconds": seconds, "jobs_per_s": jobs / seconds}


# --- latency -----------------------------------------------------------------------------------


def pulse_latency(*, jobs: int, rate: float) -> dict[str, Any]:
    """As plain_latency: from just before the submit call to the handler's start (bench.stamp), so
    both sides include the whole call and everything up to the code the user wrote. Also given:
    Job.created_at to Job.started_at (the figure before issue 8's fast path), which leaves out the
    submit's validation and checks and the start's commit; and how long the job_submit call took
    (the rest of the wait is the worker's claim, which waits for the submit's commit)."""
    from jobs.models import Job
    from jobs.services import job_submit

    import bench.handlers  # noqa: F401 (registers bench.stamp here too: job_submit checks the handler)

    reset_database()
    team = _team()
    env = _cluster_env()
    modules = env.get("PULSE_HANDLER_MODULES", "jobs.handlers.builtin,jobs.handlers.http")
    env["PULSE_HANDLER_MODULES"] = f"{modules},bench.handlers"
    with running(PULSE_PROCESSES, env):
        warm = job_submit(team=team, handler="bench.stamp", payload={"at": time.time()}, source="api").job
        wait_for(lambda: Job.objects.filter(pk=warm.pk, status=Job.Status.COMPLETED).exists(), timeout=60,
                 what="pulse warm-up job")
        ids = []
        calls = []  # how long each job_submit call took: the submit's share of the wait
        started = time.monotonic()
        for n in range(jobs):
            time.sleep(max(0.0, started + n / rate - time.monotonic()))
            called = time.perf_counter()
            ids.append(job_submit(team=team, handler="bench.stamp", payload={"at": time.time()}, source="api").job.pk)
            calls.append((time.perf_counter() - called) * 1000)
        done = Job.objects.filter(pk__in=ids, status=Job.Status.COMPLETED)
        wait_for(lambda: done.count() == jobs, timeout=drain_timeout(jobs), every=0.1, what="pulse latency jobs")
    waits = [result["waited_s"] * 1000 for result in done.values_list("result", flat=True) if result is not None]
    rows = [(s - c).total_seconds() * 1000 for c, s in done.values_list("created_at", "started_at") if s is not None]
    return {"p50_ms": statistics.median(waits), "p95_ms": percentile(waits, 95),
            "created_to_started_p50_ms": statistics.median(rows), "created_to_started_p95_ms": percentile(rows, 95),
            "submit_call_p50_ms": statistics.median(calls)}


def plain_latency(*, jobs: int, rate: float) -> dict[str, Any]:
    from django_q.models import Task
    from django_q.tasks import async_task

    reset_database()
    with running([(["qcluster"], "plain-cluster")], _cluster_env()):
        warm = async_task("bench.tasks.noop")
        wait_for(lambda: Task.objects.filter(id=warm).exists(), timeout=60, what="plain warm-up task")
        ids = []
        started = time.monotonic()
        for n in range(jobs):
            time.sleep(max(0.0, started + n / rate - time.monotonic()))
            ids.append(async_task("bench.tasks.stamp", time.time()))
        # Within save_limit (250) every result is kept.
        wait_for(lambda: Task.objects.filter(id__in=ids).count() == jobs, timeout=drain_timeout(jobs), every=0.1,
                 what="plain latency tasks")
    waits = [r * 1000 for r in Task.objects.filter(id__in=ids).values_list("result", flat=True)]
    return {"p50_ms": statistics.median(waits), "p95_ms": percentile(waits, 95)}


# --- schedules ---------------------------------------------------------------------------------


def pulse_schedules(*, schedules: int, tickers: int, on_the_minute: bool = True) -> dict[str, Any]:
    """`schedules` every-minute schedules all due at the same minute boundary, `tickers` tickers
    running; lateness is when each run became ready to hand to a worker minus the slot: its
    job's creation (the ticker firing it), or the slot itself for a run staged before it
    (a job waiting with run_after = the slot). `first_dispatch_s`: the first hand-over after
    the slot (no workers run here, so that is how far the runs get). Not `on_the_minute` (the
    smoke run): their first run is due a few seconds after the staging lead instead of at the
    next minute boundary, which took up to 105 s of waiting."""
    from django.conf import settings
    from django.utils import timezone

    from jobs.models import Job
    from schedules.models import Execution, Schedule

    reset_database()
    team = _team()
    now = timezone.now()
    # The schedules exist before their slot for at least the staging lead, as any schedule
    # does after its first run (plus time to write them).
    slot = (now + timedelta(seconds=settings.PULSE_SCHEDULE_STAGE_SECONDS + 5)).replace(microsecond=0)
    if on_the_minute:
        slot = slot.replace(second=0) + timedelta(minutes=1)
    Schedule.objects.bulk_create(
        [Schedule(team=team, name=f"bench {n}", handler="pulse.noop", payload={}, cron="* * * * *",
                  time_zone="UTC", next_run_at=slot) for n in range(schedules)],
        batch_size=2000,
    )
    specs = [(["pulse_ticker"], f"ticker-{n}") for n in range(tickers)]
    fired = Execution.objects.filter(fire_time=slot, trigger=Execution.Trigger.CRON)
    with running(specs, _cluster_env()):
        wait_for(lambda: timezone.now() > slot + timedelta(seconds=2) and fired.exclude(job=None).count() >= schedules,
                 timeout=(slot - now).total_seconds() + 120, every=0.2, what="schedules fired")
        time.sleep(1.0)  # a duplicate would show up now
    per_schedule = fired.values("schedule_id").distinct().count()
    jobs = Job.objects.filter(team=team, source=Job.Source.SCHEDULE)
    late = [(max(created, run_after or created) - slot).total_seconds()
            for created, run_after in jobs.values_list("created_at", "run_after")]
    dispatched = [d for d in jobs.values_list("dispatched_at", flat=True) if d is not None]
    return {"p50_s": statistics.median(late), "p99_s": percentile(late, 99), "max_s": max(late),
            "executions": fired.count(), "missed": schedules - per_schedule,
            "duplicates": fired.count() - per_schedule,
            "staged": sum(1 for created in jobs.values_list("created_at", flat=True) if created < slot),
            # The last run written, from the slot (negative: that long before it).
            "last_written_s": (max(jobs.values_list("created_at", flat=True)) - slot).total_seconds(),
            "first_dispatch_s": (min(dispatched) - slot).total_seconds() if dispatched else float("nan")}


# --- memory (bench/memory.py) ------------------------------------------------------------------


def pulse_memory(**params: Any) -> dict[str, Any]:
    from bench.memory import pulse_memory as measure

    return measure(**params)


# --- pages, live (bench/pages.py, bench/live.py) ----------------------------------------------


def pulse_pages(**params: Any) -> dict[str, Any]:
    from bench.pages import pulse_pages as measure

    return measure(**params)


def pulse_live(**params: Any) -> dict[str, Any]:
    from bench.live import pulse_live as measure

    return measure(**params)


MEASURES: dict[str, Callable[..., dict[str, Any]]] = {
    "pulse_throughput": pulse_throughput,
    "plain_throughput": plain_throughput,
    "pulse_latency": pulse_latency,
    "plain_latency": plain_latency,
    "pulse_schedules": pulse_schedules,
    "pulse_memory": pulse_memory,
    "pulse_pages": pulse_pages,
    "pulse_live": pulse_live,
}
