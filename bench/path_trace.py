"""Where the latency goes: Pulse's submit (on its fast path) and a worker's claim, each timed alone
in one process with its statements counted. Run against a migrated scratch database (it empties
it), with nothing else running:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/trace REDIS_URL=redis://127.0.0.1:6379/0 \\
        python3 manage.py migrate && DATABASE_URL=… REDIS_URL=… python3 -m bench.path_trace
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _p50_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def trace(jobs: int = 80, warm_up: int = 10) -> dict[str, Any]:
    from django.db import connection

    from bench.measures import _team, reset_database
    from budgets.models import BudgetPolicy
    from budgets.services import budget_preview
    from jobs import runner
    from jobs.models import Job
    from jobs.services import job_submit

    reset_database()
    team = _team()
    # Per step: wall-clock ms, statements, and ms inside them (the round trips and PostgreSQL's work).
    steps: dict[str, tuple[list[float], list[int], list[float]]] = {
        "submit": ([], [], []), "preview": ([], [], []), "claim": ([], [], [])}

    def timed(step: str, call: Callable[[], T]) -> T:
        total, statements, in_database = steps[step]
        counted, inside = [0], [0.0]

        def count(execute, sql, params, many, context):
            counted[0] += 1
            began = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                inside[0] += time.perf_counter() - began

        with connection.execute_wrapper(count):
            started = time.perf_counter()
            result = call()
            total.append((time.perf_counter() - started) * 1000)
        statements.append(counted[0])
        in_database.append(inside[0] * 1000)
        return result

    handed_over = 0
    for _ in range(jobs):
        job = timed("submit", lambda: job_submit(team=team, handler="pulse.noop", payload={}, source="api").job)
        handed_over += job.dispatched_at is not None
        timed("preview", lambda: budget_preview(job=job))  # the part of the submit after its commit, alone
        time.sleep(0.02)
        claimed = timed("claim", lambda: runner.claim(job.public_id))
        assert claimed is not None, "the job was not claimed"
        # Finished at once, so that the next submit finds room and takes the fast path.
        Job.objects.filter(pk=job.pk).update(status=Job.Status.COMPLETED, dispatched_at=None)
        BudgetPolicy.objects.filter(team=team).update(running=0)
        time.sleep(0.02)
    kept = slice(warm_up, None)
    report: dict[str, Any] = {"handed_over_at_submit": f"{handed_over} of {jobs}"}
    for step, (total, statements, in_database) in steps.items():
        report[f"{step}_p50_p95_ms"] = _p50_p95(total[kept])
        report[f"{step}_statements"] = statistics.median(statements)
        report[f"{step}_in_statements_p50_ms"] = statistics.median(in_database[kept])
    return report


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulse_site.settings")
    import django

    django.setup()
    for key, value in trace().items():
        print(f"{key}: {value}")
