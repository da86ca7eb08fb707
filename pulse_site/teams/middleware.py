from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from pulse_site.teams.selectors import membership_shown

SESSION_TEAM_KEY = "pulse_team"


class TeamMiddleware:
    """Sets `request.team` and `request.membership` from the session's chosen team.

    A user who was removed from the chosen team falls back to their first team (or None), so a
    stale session can never keep reading a team it no longer belongs to; `request.team_lost` says
    so. A dashboard page then shows the team fallen back to (and the session takes it); an API
    call is refused (TeamSessionAuthentication): a script or a page drawn for the team left would
    otherwise act on another.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.team = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        request.team_lost = False  # type: ignore[attr-defined]
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            membership, request.team_lost = membership_shown(  # type: ignore[attr-defined]
                user=user, team_public_id=request.session.get(SESSION_TEAM_KEY))
            if membership is not None:
                request.team = membership.team  # type: ignore[attr-defined]
                request.membership = membership  # type: ignore[attr-defined]
        return self.get_response(request)
