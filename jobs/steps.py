"""Ticker steps of the jobs app."""

from __future__ import annotations

from jobs.dispatch import dispatch, redispatch_stale
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
