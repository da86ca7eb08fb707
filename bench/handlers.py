"""Handlers only the bench's Pulse processes load (PULSE_HANDLER_MODULES names this module)."""

from __future__ import annotations

import time
from typing import Any

from jobs.handlers import JobContext, handler


@handler("bench.progress", title="Bench: timed progress", cost="0", timeout=120, max_attempts=1,
         schema={"type": "object", "properties": {"steps": {"type": "integer", "minimum": 1},
                                                  "every": {"type": "number", "minimum": 0}}})
def progress(ctx: JobContext) -> dict[str, Any]:
    """`steps` progress calls `every` seconds apart, each carrying the time it was made (the live
    measurement's clock: the client subtracts it from the time the event reaches it)."""
    steps = int(ctx.payload.get("steps", 5))
    every = float(ctx.payload.get("every", 0.3))
    for step in range(1, steps + 1):
        ctx.progress(step, steps, f"{time.time():.6f}")
        ctx.sleep(every)
    return {"steps": steps}


@handler("bench.stamp", title="Bench: latency stamp", cost="0", timeout=60, max_attempts=1,
         schema={"type": "object", "properties": {"at": {"type": "number"}}, "required": ["at"]})
def stamp(ctx: JobContext) -> dict[str, Any]:
    """Seconds from `at` (the submitter's clock just before job_submit) to this handler's start:
    the same span as plain django-q2's bench.tasks.stamp, on the same machine and clock."""
    return {"waited_s": time.time() - float(ctx.payload["at"])}
