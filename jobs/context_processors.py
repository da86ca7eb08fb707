from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from jobs.pausing import queue_pauses_for_team


def queue_pauses(request: HttpRequest) -> dict[str, object]:
    """The pauses holding the request's team's jobs, for the banner in base.html (queried only
    when a template shows them)."""
    team = getattr(request, "team", None)
    if team is None:
        return {}
    return {"queue_pauses": SimpleLazyObject(lambda: queue_pauses_for_team(team=team))}
