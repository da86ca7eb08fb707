"""Handlers that ship with Pulse: for demos, tests and the benchmark."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from jobs.error_codes import HANDLER_CODES, JobError
from jobs.handlers.context import JobContext
from jobs.handlers.registry import handler, shipped_timeout


@handler(
    "pulse.sleep",
    title="Sleep in steps",
    description="Runs `steps` steps of `seconds` each, reporting progress and a log line per step. "
    "Stops early when cancelled.",
    schema={
        "type": "object",
        "properties": {
            "steps": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 5},
            "seconds": {"type": "number", "minimum": 0, "maximum": 3600, "default": 1},
        },
        "additionalProperties": False,
    },
    cost="0",
    timeout=shipped_timeout(3600),
    max_attempts=1,
)
def sleep(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.payload["steps"])
    seconds = float(ctx.payload["seconds"])
    for step in range(1, steps + 1):
        if ctx.sleep(seconds):
            return {"steps_done": step - 1}
        ctx.progress(step, steps, f"Step {step} of {steps}")
        ctx.log(f"Step {step} of {steps} done", stage="sleep", task=f"step-{step}")
    return {"steps_done": steps}


@handler(
    "pulse.noop",
    title="Do nothing",
    description="Returns at once. Measures the platform's own overhead.",
    schema={"type": "object"},
    cost="0",
    timeout=shipped_timeout(60),
    max_attempts=1,
)
def noop(ctx: JobContext) -> None:
    return None


@handler(
    "pulse.fail",
    title="Fail on purpose",
    description="Fails with the chosen error code after an optional delay. Retries follow the code's "
    "default flags unless `retryable` says otherwise.",
    schema={
        "type": "object",
        "properties": {
            "code": {"type": "string", "enum": sorted(str(code) for code in HANDLER_CODES), "default": "unknown"},
            "message": {"type": "string", "maxLength": 1000, "default": "Failed on purpose"},
            "delay": {"type": "number", "minimum": 0, "maximum": 600, "default": 0},
            "retryable": {"type": "boolean"},
        },
        "additionalProperties": False,
    },
    cost="0",
    timeout=shipped_timeout(900),
    max_attempts=3,
    backoff_base=1.0,
)
def fail(ctx: JobContext) -> None:
    delay = float(ctx.payload["delay"])
    if delay and ctx.sleep(delay):
        return
    raise JobError(ctx.payload["code"], ctx.payload["message"],
                   retryable=ctx.payload.get("retryable"))


REPORT_STAGES = (
    ("collect", ("orders", "refunds", "customers")),
    ("analyse", ("totals", "trends")),
    ("publish", ("render", "upload")),
)


def _report_estimate(payload: dict[str, Any]) -> Decimal:
    """0.01 per task (7 tasks) plus 0.05 to publish."""
    return Decimal("0.01") * sum(len(tasks) for _, tasks in REPORT_STAGES) + Decimal("0.05")


@handler(
    "demo.report",
    title="Build a report",
    description="Three named stages (collect, analyse, publish) with tasks, log lines, progress and a "
    "reported actual cost of 0.01 per task.",
    schema={
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 200, "default": "Weekly report"},
            "delay": {"type": "number", "minimum": 0, "maximum": 60, "default": 0.5},
        },
        "additionalProperties": False,
    },
    cost=_report_estimate,
    timeout=shipped_timeout(900),
    max_attempts=2,
)
def report(ctx: JobContext) -> dict[str, Any]:
    delay = float(ctx.payload["delay"])
    total = sum(len(tasks) for _, tasks in REPORT_STAGES)
    done = 0
    for stage, tasks in REPORT_STAGES:
        for task in tasks:
            with ctx.stage(stage, task):
                ctx.log(f"{stage}: {task} started")
                started = time.monotonic()
                if ctx.sleep(delay):
                    return {"tasks_done": done}
                ctx.report_cost("0.01")
                done += 1
                ctx.progress(done, total, f"{stage}: {task}")
                ctx.log(f"{stage}: {task} done in {int((time.monotonic() - started) * 1000)} ms")
    return {"title": ctx.payload["title"], "tasks_done": done}
