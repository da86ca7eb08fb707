"""The memory measurement: the RSS of a cluster's worker processes after many jobs.

Worker recycling is turned off (by default django-q2 replaces a worker every
PULSE_WORKER_RECYCLE tasks, which would hide a leak). The workers are the pids django-q2's own
cluster stats list; the whole cluster (sentinel, pusher, monitor, workers) is reported beside.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil

from bench.measures import PULSE_PROCESSES, _team, reset_database
from bench.procs import running, wait_for

# The backlog is kept below this while submitting, as a steady stream would: the measurement is of
# the workers, not of a queue of 100,000 waiting jobs.
BACKLOG = 2_000


def _worker_pids() -> list[int]:
    from django_q.brokers import get_broker
    from django_q.status import Stat

    stats = Stat.get_all(broker=get_broker()) or []
    return sorted(pid for stat in stats for pid in stat.workers)


def _rss_kb(pids: list[int]) -> list[int]:
    return [psutil.Process(pid).memory_info().rss // 1024 for pid in pids]


def _cluster_rss_kb(process: Any) -> int:
    parent = psutil.Process(process.pid)
    return sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]) // 1024


def _submit(team: Any, count: int) -> None:
    """In batches of 500 (as a schedule tick writes them): one job_submit per job took 13–30 ms of
    the same two cores, so the submitter, not the workers, set the pace of a 100,000-job run."""
    from jobs.services import SubmitItem, job_submit_many

    for start in range(0, count, SUBMIT_BATCH):
        items = [SubmitItem(team=team, handler="pulse.noop", payload={}, source="api")
                 for _ in range(min(SUBMIT_BATCH, count - start))]
        job_submit_many(items=items)


SUBMIT_BATCH = 500


def pulse_memory(*, first: int, total: int) -> dict[str, Any]:
    """Worker RSS after `first` jobs, after half of `total` and after `total`."""
    from jobs.models import Job

    reset_database()
    team = _team()
    env = {**os.environ, "PULSE_WORKER_RECYCLE": str(total * 10)}
    jobs = Job.objects.filter(team=team)
    done = jobs.filter(status=Job.Status.COMPLETED)
    poll = 0.2 if total <= 5_000 else 1.0

    def settle(count: int) -> tuple[list[int], list[int], int]:
        wait_for(lambda: done.count() >= count, timeout=120 + count / 5, every=poll, what=f"{count} jobs")
        time.sleep(1.0)  # the last settles' garbage
        pids = wait_for(_worker_pids, timeout=30, every=0.5, what="the cluster's stats")
        return pids, _rss_kb(pids), _cluster_rss_kb(cluster)

    with running(PULSE_PROCESSES, env) as (cluster, _ticker):
        started = time.monotonic()
        _submit(team, first)
        pids_first, workers_first, cluster_first = settle(first)
        submitted = first
        middle = None
        while submitted < total:
            wait_for(lambda: submitted - done.count() < BACKLOG, timeout=600, every=poll, what="the backlog to drain")
            chunk = min(BACKLOG, total - submitted)
            _submit(team, chunk)
            submitted += chunk
            if middle is None and submitted >= total // 2 and submitted < total:
                middle = settle(submitted)
        pids_total, workers_total, cluster_total = settle(total)
        seconds = time.monotonic() - started
    if jobs.exclude(status=Job.Status.COMPLETED).exists():
        raise RuntimeError("some memory jobs did not complete")
    first_kb, total_kb = sum(workers_first), sum(workers_total)
    return {
        "rss_first_kb": first_kb,
        "rss_middle_kb": sum(middle[1]) if middle else first_kb,
        "rss_total_kb": total_kb,
        "growth_pct": 100 * (total_kb / first_kb - 1),
        # The worst single worker (a leak in one worker would be diluted by the others in the sum).
        "worker_max_growth_pct": max(100 * (b / a - 1) for a, b in zip(workers_first, workers_total, strict=False)),
        "cluster_first_kb": cluster_first,
        "cluster_total_kb": cluster_total,
        "cluster_growth_pct": 100 * (cluster_total / cluster_first - 1),
        # A worker replaced during the run (crash, timeout) would make the comparison meaningless.
        "workers_replaced": len(set(pids_first) - set(pids_total)),
        "jobs_per_s": total / seconds,
    }
