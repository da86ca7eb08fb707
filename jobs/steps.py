"""Ticker steps of the jobs app."""

from __future__ import annotations

from django.conf import settings

from jobs.dispatch import dispatch, redispatch_stale
from jobs.retention import jobs_prune
from jobs.runner import rescue_expired
from pulse_site.ticker import step


@step("jobs.rescue", every=1.0, atomic=False)
def rescue() -> None:
    rescue_expired()


@step("jobs.redispatch", every=5.0, atomic=False)
def redispatch() -> None:
    redispatch_stale()


@step("jobs.dispatch", every=1.0, atomic=False)
def dispatch_due() -> None:
    # Jobs whose retry time has come, and anything a missed on-commit dispatch left behind.
    dispatch()


@step("jobs.prune", every=60.0, atomic=False)
def prune() -> int:
    # Not atomic: every batch commits on its own so the pruner never holds many rows at once.
    return jobs_prune(older_than_days=settings.PULSE_JOB_RETENTION_DAYS)
