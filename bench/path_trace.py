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
from typing import Any


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
    statements = [0]
    in_database = [0.0]  # seconds in the driver's execute: the round trip and PostgreSQL's work

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements[0] += 1
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            in_database[0] += time.perf_counter() - began

    submit_ms, preview_ms, claim_ms, submit_n, claim_n, handed_over = [], [], [], [], [], 0
    submit_db_ms: list[float] = []
    claim_db_ms: list[float] = []
    for _ in range(jobs):
        statements[0], in_database[0] = 0, 0.0
        with connection.execute_wrapper(count):
            started = time.perf_counter()
            job = job_submit(team=team, handler="pulse.noop", payload={}, source="api").job
            submit_ms.append((time.perf_counter() - started) * 1000)
            submit_n.append(statements[0])
            submit_db_ms.append(in_database[0] * 1000)
        handed_over += job.dispatched_at is not None
        started = time.perf_counter()
        budget_preview(job=job)  # the part of the submit after its commit, timed again alone
        preview_ms.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
        statements[0], in_database[0] = 0, 0.0
        with connection.execute_wrapper(count):
            started = time.perf_counter()
            claimed = runner.claim(job.public_id)
            claim_ms.append((time.perf_counter() - started) * 1000)
            claim_n.append(statements[0])
            claim_db_ms.append(in_database[0] * 1000)
        assert claimed is not None, "the job was not claimed"
        # Finished at once, so that the next submit finds room and takes the fast path.
        Job.objects.filter(pk=job.pk).update(status=Job.Status.COMPLETED, dispatched_at=None)
        BudgetPolicy.objects.filter(team=team).update(running=0)
        time.sleep(0.02)
    kept = slice(warm_up, None)
    return {
        "handed_over_at_submit": f"{handed_over} of {jobs}",
        "submit_p50_p95_ms": _p50_p95(submit_ms[kept]), "submit_statements": statistics.median(submit_n),
        "submit_in_statements_p50_ms": statistics.median(submit_db_ms[kept]),
        "preview_p50_ms": statistics.median(preview_ms[kept]),
        "claim_p50_p95_ms": _p50_p95(claim_ms[kept]), "claim_statements": statistics.median(claim_n),
        "claim_in_statements_p50_ms": statistics.median(claim_db_ms[kept]),
    }


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulse_site.settings")
    import django

    django.setup()
    for key, value in trace().items():
        print(f"{key}: {value}")
