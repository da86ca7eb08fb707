"""Demo budgets: Acme's limits are low enough that a newcomer sees holds, a countdown and alerts
within minutes of starting (its every-minute report and two-minute sleep share one slot)."""

from __future__ import annotations

from typing import Any

from budgets.services import budget_policy_update
from pulse_site.teams.models import Team

DEMO_BUDGETS: dict[str, dict[str, Any]] = {
    "acme-analytics": {"daily_limit": "0.50", "weekly_limit": "2.00", "monthly_limit": "5.00",
                       "calls_per_minute": 10, "max_concurrent": 1, "alert_thresholds": [50, 80, 100]},
    "globex-research": {"daily_limit": "5.00", "weekly_limit": None, "monthly_limit": "50.00",
                        "calls_per_minute": 60, "max_concurrent": 4, "alert_thresholds": [80, 100]},
}


def demo_budgets(teams: dict[str, Team]) -> None:
    """Set the demo policies, or put back what was changed (recorded as a change by the operator)."""
    for slug, changes in DEMO_BUDGETS.items():
        budget_policy_update(team=teams[slug], changes=changes, by=None)
