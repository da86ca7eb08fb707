"""Ticker steps of the budgets app: release held jobs whose time has come, repair usage."""

from __future__ import annotations

import logging

from budgets.models import BudgetPolicy, Start
from budgets.services import RATE_WINDOW, budget_repair, db_now
from pulse_site.ticker import step

log = logging.getLogger("pulse.budgets")


@step("budgets.release", every=1.0, atomic=False)
def release_due() -> None:
    from jobs.services import job_release_due  # jobs depends on budgets, not the other way

    job_release_due()


@step("budgets.prune_starts", every=60.0)
def prune_starts() -> None:
    # The only pruning of starts: the gate reads the last minute only, so old rows just wait here.
    Start.objects.filter(at__lte=db_now() - RATE_WINDOW).delete()


@step("budgets.repair", every=60.0, atomic=False)
def repair() -> None:
    # Each team in its own short transaction, so one team's lock never waits on another's.
    for team_id in list(BudgetPolicy.objects.values_list("team_id", flat=True).order_by("team_id")):
        try:
            budget_repair(team_id=team_id)
        except Exception:
            log.exception("budget repair of team %s failed", team_id)
