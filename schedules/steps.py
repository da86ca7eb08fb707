"""Ticker steps of the schedules app."""

from __future__ import annotations

from django.conf import settings

from pulse_site.ticker import step
from schedules.retention import executions_prune
from schedules.services import executions_follow, schedules_tick


@step("schedules.tick", every=1.0, atomic=False)
def tick() -> None:
    # Not atomic: each schedule commits on its own, so one slow or failing schedule holds no others.
    schedules_tick()


@step("schedules.follow", every=1.0, atomic=False)
def follow() -> None:
    executions_follow()


@step("schedules.prune", every=60.0, atomic=False)
def prune() -> int:
    return executions_prune(older_than_days=settings.PULSE_EXECUTION_RETENTION_DAYS)
