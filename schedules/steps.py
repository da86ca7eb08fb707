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
    _dispatch_passed()
    # Not atomic: each batch commits on its own, and a failing schedule is rolled back alone.
    _staged_slots.update(schedules_tick().staged_slots)
    _dispatch_passed()
    # Wake at the next slot when it comes before the next tick: a tick once a second would start
    # a minute's schedules up to a second late.
    now = timezone.now()
    waits = [(slot - now).total_seconds() for slot in _staged_slots]
    due = schedules_next_due_in(now=now)
    wait = min(waits + ([due] if due is not None else []), default=None)
    if wait is not None and 0 < wait < settings.PULSE_TICK_SECONDS:
        time.sleep(wait)
        # The runs staged for this slot are ready now: hand them over first (the tick may next
        # stage the following slot's runs).
        _dispatch_passed()
        _staged_slots.update(schedules_tick().staged_slots)


def _dispatch_passed() -> None:
    """Hand over the runs of the staged slots that have come, without waiting for the dispatch
    step's turn (a round behind a big staging pass or a slow step can be late)."""
    now = timezone.now()
    passed = {slot for slot in _staged_slots if slot <= now}
    if passed:
        _staged_slots.difference_update(passed)
        dispatch()


@step("schedules.follow", every=1.0, atomic=False)
def follow() -> None:
    executions_follow()


@step("schedules.prune", every=60.0, atomic=False)
def prune() -> int:
    return executions_prune(older_than_days=settings.PULSE_EXECUTION_RETENTION_DAYS)
