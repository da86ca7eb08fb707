from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from budgets.selectors import budget_active_alerts


def budget_alerts(request: HttpRequest) -> dict[str, object]:
    """The active budget alerts of the request's team, for the banner in base.html (queried
    only when a template shows them)."""
    team = getattr(request, "team", None)
    if team is None:
        return {}
    return {"budget_alerts": SimpleLazyObject(lambda: budget_active_alerts(team=team))}
