"""The soak test's handler, loaded into its real clusters (via PULSE_HANDLER_MODULES).

What an attempt does is written in the payload, so the test knows what to expect of every job:
`fail` ("" | "retry" | "fatal") fails the first attempt with a retryable network error (the retry
then succeeds) or every attempt with a non-retryable validation error; `cost` is the actual cost
reported (the estimate is a fixed 0.01, so some jobs overrun it); `seconds` is how long it works.
Its last act is the "finished" log line the test counts: a handler that ran to completion twice
would leave two."""

from __future__ import annotations

from jobs.error_codes import ErrorCode
from jobs.handlers import JobContext, JobError, handler

ESTIMATE = "0.01"


@handler("soak.work", title="Soak: works a little, sometimes fails, reports a cost", cost=ESTIMATE, timeout=60,
         max_attempts=3, retry_on=[ErrorCode.NETWORK_ERROR, ErrorCode.WORKER_LOST], backoff_base=0.2, backoff_cap=1,
         schema={"type": "object", "properties": {
             "fail": {"type": "string", "enum": ["", "retry", "fatal"]},
             "cost": {"type": "string"},
             "seconds": {"type": "number", "minimum": 0}}})
def work(ctx: JobContext) -> dict:
    fail = ctx.payload.get("fail", "")
    if fail == "fatal":
        raise JobError(ErrorCode.VALIDATION_ERROR, "soak: a failure that is not retried", retryable=False)
    if fail == "retry" and ctx.attempt == 1:
        raise JobError(ErrorCode.NETWORK_ERROR, "soak: a failure that is retried", retryable=True)
    seconds = float(ctx.payload.get("seconds", 0))
    if seconds and ctx.sleep(seconds):
        return {"cancelled": True}
    ctx.report_cost(ctx.payload.get("cost", ESTIMATE))
    ctx.log("finished", stage="soak")
    return {"attempt": ctx.attempt}
