"""Ticker steps of the schedules app."""

from __future__ import annotations

import time

from django.conf import settings

from pulse_site.ticker import step
from schedules.retention import executions_prune
from schedules.services import executions_follow, schedules_next_due_in, schedules_tick


@step("schedules.tick", every=1.0, atomic=False)
def tick() -> None:
    # Not atomic: each batch commits on its own, and a failing schedule is rolled back alone.
    schedules_tick()
    # Wake at the next slot when it comes before the next tick: a tick once a second would start
    # a minute's schedules up to a second late.
    wait = schedules_next_due_in()
    if wait is not None and 0 < wait < settings.PULSE_TICK_SECONDS:
        time.sleep(wait)
        schedules_tick()


@step("schedules.follow", every=1.0, atomic=False)
def follow() -> None:
    executions_follow()


@step("schedules.prune", every=60.0, atomic=False)
def prune() -> int:
    return executions_prune(older_than_days=settings.PULSE_EXECUTION_RETENTION_DAYS)
