from __future__ import annotations

import pytest

from budgets.services import budget_policy_update
from jobs.handlers.registry import handler, unregister
from jobs.models import Job
from jobs.services import job_submit

PAID = "test.paid"
OTHER = "test.other"


@pytest.fixture(autouse=True)
def paid_handlers():
    """Two handlers whose estimate is the payload's "cost" and whose actual is its "actual"
    (the estimate when absent, like a handler that reports nothing)."""

    def run(ctx):
        if ctx.payload.get("actual") is not None:
            ctx.report_cost(ctx.payload["actual"])
        return {"ok": True}

    for name in (PAID, OTHER):
        handler(name, title=name, cost=lambda payload: payload.get("cost", "1.00"), max_attempts=1)(run)
    yield
    unregister(PAID)
    unregister(OTHER)


@pytest.fixture
def set_policy():
    def _set(team, **changes):
        return budget_policy_update(team=team, changes=changes, by=None)

    return _set


@pytest.fixture
def submit(acme):
    def _submit(cost: str = "1.00", *, team=None, handler_name: str = PAID, actual: str | None = None,
                **kwargs) -> Job:
        payload = {"cost": cost}
        if actual is not None:
            payload["actual"] = actual
        kwargs.setdefault("source", Job.Source.API)
        return job_submit(team=team or acme, handler=handler_name, payload=payload, **kwargs).job

    return _submit
