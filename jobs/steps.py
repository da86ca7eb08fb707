"""Ticker steps of the jobs app."""

from __future__ import annotations

import time

from django.conf import settings
from django.utils import timezone

from jobs.dispatch import dispatch, next_start_in, redispatch_stale
from jobs.handover import handover_after_outage, handover_check
from jobs.retention import jobs_prune
from jobs.runner import rescue_expired
from pulse_site.ticker import on_database_back, step


@step("jobs.rescue", every=1.0, atomic=False)
def rescue() -> None:
    rescue_expired()


@step("jobs.redispatch", every=5.0, atomic=False)
def redispatch() -> None:
    # The backstop: a lost message none of the handover signals showed.
    redispatch_stale()


@step("jobs.handover", every=1.0, atomic=False)
def handover() -> None:
    # A cluster that stopped reporting, or a broker that lost its data: hand its jobs over again.
    handover_check()


on_database_back(handover_after_outage)


@step("jobs.dispatch", every=1.0, atomic=False)
def dispatch_due() -> None:
    # Jobs whose retry time has come, and anything a missed on-commit dispatch left behind.
    dispatch()
    # Wake at a start time that comes before the next tick (a retry's backoff, a run_after): a
    # tick once a second would start such a job up to a second late.
    wait = next_start_in(timezone.now(), within=settings.PULSE_TICK_SECONDS)
    if wait is not None:
        time.sleep(wait)
        dispatch()


@step("jobs.prune", every=60.0, atomic=False)
def prune() -> int:
    # Not atomic: every batch commits on its own so the pruner never holds many rows at once.
    return jobs_prune(older_than_days=settings.PULSE_JOB_RETENTION_DAYS)
