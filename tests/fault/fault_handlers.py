"""Handlers the fault tests load into their real clusters (via PULSE_HANDLER_MODULES).

Each logs "finished" as its very last act, so a test counts completed handler runs per job."""

from __future__ import annotations

from jobs.error_codes import ErrorCode
from jobs.handlers import JobContext, handler


@handler("fault.work", title="Sleeps in small steps, then says it finished", cost="0", timeout=120, max_attempts=5,
         retry_on=[ErrorCode.WORKER_LOST], backoff_base=0.2,
         schema={"type": "object", "properties": {"steps": {"type": "integer"}, "seconds": {"type": "number"}}})
def work(ctx: JobContext) -> dict:
    count = int(ctx.payload.get("steps", 1))
    for step in range(1, count + 1):
        if ctx.sleep(float(ctx.payload.get("seconds", 0.1))):
            return {"done": step - 1}
        ctx.progress(step, count, f"step {step}")
    ctx.log("finished", stage="fault")
    return {"done": count}


@handler("fault.quiet", title="Sleeps without touching the database, then returns", cost="0", timeout=120,
         max_attempts=1, schema={"type": "object", "properties": {"seconds": {"type": "number"}}})
def quiet(ctx: JobContext) -> dict:
    # No progress, no log: a handler that ends while the database is away leaves its result to
    # the settle alone (max_attempts=1: a rescue would fail it, so a completed job proves the settle).
    seconds = float(ctx.payload.get("seconds", 1))
    ctx.sleep(seconds)
    return {"slept": seconds}


@handler("fault.paid", title="A paid call that sleeps in small steps, then says it finished", cost="0.01",
         timeout=120, max_attempts=5, retry_on=[ErrorCode.WORKER_LOST], backoff_base=0.2,
         schema={"type": "object", "properties": {"steps": {"type": "integer"}, "seconds": {"type": "number"}}})
def paid(ctx: JobContext) -> dict:
    return work(ctx)
