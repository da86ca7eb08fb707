"""Daemon handlers the real-cluster daemon tests load into their qcluster (PULSE_HANDLER_MODULES)."""

from __future__ import annotations

from jobs.error_codes import ErrorCode
from jobs.handlers import JobContext, JobError, handler

FAILURES = 3
RETURNS = 2


@handler("test.daemon_flaky", title="Fails its first three starts, then runs until cancelled", cost="0",
         daemon=True, backoff_base=0.5, backoff_cap=2)
def flaky(ctx: JobContext) -> None:
    if ctx.attempt <= FAILURES:
        raise JobError(ErrorCode.NETWORK_ERROR, f"upstream refused (start {ctx.attempt})")
    while not ctx.sleep(0.1):
        pass


@handler("test.daemon_quits", title="Returns at once on its first two starts, then runs until cancelled",
         cost="0", daemon=True, backoff_base=0.2, backoff_cap=1)
def quits(ctx: JobContext) -> None:
    if ctx.attempt <= RETURNS:
        return None
    while not ctx.sleep(0.1):
        pass
