"""Ticker steps of the schedules app."""

from __future__ import annotations

import time
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from jobs.dispatch import dispatch
from pulse_site.ticker import step
from schedules.retention import executions_prune
from schedules.services import executions_follow, schedules_next_due_in, schedules_tick

# Slots this ticker staged runs for that have not come yet: it wakes at each to hand them over.
_staged_slots: set[datetime] = set()


@step("schedules.tick", every=1.0, atomic=False)
def tick() -> None:
    # Not atomic: each batch commits on its own, and a failing schedule is rolled back alone.
    _staged_slots.update(schedules_tick().staged_slots)
    # Wake at the next slot when it comes before the next tick: a tick once a second would start
    # a minute's schedules up to a second late.
    now = timezone.now()
    _staged_slots.difference_update({slot for slot in _staged_slots if slot <= now})
    waits = [(slot - now).total_seconds() for slot in _staged_slots]
    due = schedules_next_due_in(now=now)
    wait = min(waits + ([due] if due is not None else []), default=None)
    if wait is not None and 0 < wait < settings.PULSE_TICK_SECONDS:
        time.sleep(wait)
        # The runs staged for this slot are ready now: hand them over first, without waiting for
        # the dispatch step's turn (the tick may next stage the following slot's runs).
        dispatch()
        _staged_slots.update(schedules_tick().staged_slots)


@step("schedules.follow", every=1.0, atomic=False)
def follow() -> None:
    executions_follow()


@step("schedules.prune", every=60.0, atomic=False)
def prune() -> int:
    return executions_prune(older_than_days=settings.PULSE_EXECUTION_RETENTION_DAYS)
