"""Handlers the real-cluster tests load into their qcluster (via PULSE_HANDLER_MODULES)."""

from __future__ import annotations

import os
import signal

from jobs.error_codes import ErrorCode
from jobs.handlers import JobContext, handler


@handler("test.steps", title="Steps that survive a lost worker", cost="0", timeout=60, max_attempts=3,
         retry_on=[ErrorCode.WORKER_LOST], backoff_base=0.2,
         schema={"type": "object", "properties": {"steps": {"type": "integer"}, "seconds": {"type": "number"}}})
def steps(ctx: JobContext) -> dict:
    count = int(ctx.payload.get("steps", 3))
    for step in range(1, count + 1):
        if ctx.sleep(float(ctx.payload.get("seconds", 0.2))):
            return {"done": step - 1}
        ctx.progress(step, count, f"step {step}")
        ctx.log(f"step {step}", stage="work")
    return {"done": count}


@handler("test.poison", title="Kills its own worker", cost="0", timeout=60, max_attempts=2,
         retry_on=[ErrorCode.WORKER_LOST], backoff_base=0.2)
def poison(ctx: JobContext) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@handler("test.count_running", title="Returns how many of its team's jobs run", cost="0.01", timeout=30)
def count_running(ctx: JobContext) -> int:
    from jobs.models import Job

    team_id = Job.objects.values_list("team_id", flat=True).get(public_id=ctx.job_id)
    return Job.objects.filter(team_id=team_id, status=Job.Status.RUNNING).count()


@handler("test.deaf", title="Never asks whether it was cancelled", cost="0.5", timeout=60, max_attempts=1)
def deaf(ctx: JobContext) -> dict:
    import time

    ctx.progress(1, 2, "started")
    ctx.log("busy", stage="work")  # each call writes: the test waits for this line, then cancels
    for _ in range(600):  # 60 s, never looking at ctx.cancelled()
        try:
            time.sleep(0.1)
        except Exception:  # noqa: BLE001,S112  (a broad except cannot swallow the stop)
            continue
    return {"finished": True}


@handler("test.exits", title="Calls sys.exit", cost="0", timeout=30, max_attempts=1)
def exits(ctx: JobContext) -> None:
    import sys

    sys.exit("done here")


@handler("test.overrun", title="Runs past its timeout, deaf to it", cost="0.25", timeout=1, max_attempts=1,
         schema={"type": "object", "properties": {"query": {"type": "boolean"}}})
def overrun(ctx: JobContext) -> dict:
    import time

    from django.db import connection

    ctx.log("busy", stage="work")
    if ctx.payload.get("query"):
        with connection.cursor() as cursor:  # waits in its own query when the timeout comes
            cursor.execute("SELECT pg_sleep(30)")
    for _ in range(300):  # 30 s, never looking at ctx.cancelled()
        try:
            time.sleep(0.1)
        except Exception:  # noqa: BLE001,S112  (a broad except cannot swallow the timeout)
            continue
    return {"finished": True}
