"""Handlers the budget cluster test loads into its qcluster processes (PULSE_HANDLER_MODULES)."""

from __future__ import annotations

from jobs.handlers import JobContext, handler


@handler("test.budget_paid", title="A paid call", cost=lambda payload: payload.get("cost", "0.10"), timeout=30,
         max_attempts=1)
def paid(ctx: JobContext) -> dict:
    ctx.sleep(0.05)
    ctx.log("charged", stage="work")
    return {"ok": True}


@handler("test.budget_timed", title="A paid call that takes a while", cost=lambda payload: payload.get("cost", "0.10"),
         timeout=30, max_attempts=1)
def timed(ctx: JobContext) -> dict:
    ctx.sleep(float(ctx.payload.get("seconds", 0.2)))
    return {"ok": True}
